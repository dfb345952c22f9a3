"""Review of a change between two revisions: the report and its Markdown rendering."""
