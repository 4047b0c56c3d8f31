"""The eligibility review API: reviewers approve or reject the cases eligibility held for review.

    python -m eligibility.review_api --host 127.0.0.1 --port 8091    # reads DATABASE_URL

Every route but ``GET /healthz`` needs a token of a user with the ``reviewer`` role. Four eyes
are enforced by ``eligibility.review_service`` inside the action's transaction, never by the
client: the CLI (``reintegra review``) only talks to this API.
"""

from eligibility.review_api.app import create_app

__all__ = ["create_app"]
