"""`translate serve`: a local web page to try models on images and a live camera, and to
watch training runs. Needs the ``serve`` extra (FastAPI, uvicorn, python-multipart)."""
