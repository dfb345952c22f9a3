from registry.library import PromptLibrary


def test_version_numbers_follow_first_parent_history(git_repo, make_library):
    git_repo.commit("one", {"prompts/a.prompt": "hello {{ x }}"})
    git_repo.commit("two", {"prompts/a.prompt": "hi {{ x }}"})
    library: PromptLibrary = make_library(git_repo)
    records, _ = library.history("a")
    assert [r.label for r in records] == ["v1", "v2"]
    assert library.get("a", "v1").prompt.body == "hello {{ x }}"
    assert library.store.user_identity() == "Test Author <author@example.com>"
