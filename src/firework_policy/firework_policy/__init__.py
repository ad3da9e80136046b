"""Multi-task transformer policy (images + proprioception + language goal -> action) and its node."""
