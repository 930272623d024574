"""Protocol buffers TF Serving defines but the tensorflow-serving-api wheel does not ship (compiled by `make setup`)."""
