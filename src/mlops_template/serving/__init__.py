"""Serving: the request contract derived from the schema (`contract`), the BentoML service
(`service`, with its request guard, OpenAPI patch and prediction / feedback logs: `guard`,
`openapi`, `logbook`). `serving.build` packages them (bento, container, smoke test); the bento
and the image carry only `core` and these modules."""
