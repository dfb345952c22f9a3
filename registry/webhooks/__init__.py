"""Webhooks: subscriptions, the events they receive, and their delivery.

Every release log row (and, through the same one call, every rollout decision) is written
to an outbox in the transaction of the action itself (`outbox`), one delivery row per
matching subscription. A dispatcher in the server (`dispatcher`) sends them off the
request path, signed the Standard Webhooks way (`signing`), with retries and backoff,
one sender per delivery across replicas and in log order per prompt and environment.
"""
