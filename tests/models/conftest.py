"""The loopback Hugging Face Hub and the HF cache that huggingface_hub filled from it (tests/hub_server.py),
for every test under tests/models: one server and one cache per session."""

from tests.hub_server import hf_home, hub, hub_repos  # noqa: F401  (session fixtures)
