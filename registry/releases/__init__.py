"""The operational side: what runs where (the release service), how a request is routed
to stable or canary (`routing`, shared with the client), and the in-memory serving cache.
"""
