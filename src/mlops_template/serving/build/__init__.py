"""Packaging the service: the bento (`bento`), the image's context and labels (`container`),
and the smoke test of a built image (`smoke`). Build-time code: not shipped in the bento."""
