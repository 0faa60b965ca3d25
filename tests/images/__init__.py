"""podman plumbing for tests/test_image.py: stand-in base images, podman's settings, helpers."""
