"""Serving: the request contract derived from the schema (`contract`) and the BentoML service
(`service`). `serving.build` packages them (bento, container, smoke test); the bento and the
image carry only `core` and these two modules."""
