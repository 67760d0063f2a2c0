"""Image apps' core (no Prefect): building an app's image from its source at a ref, pushing it
to an environment's registry and reading back what was pushed.

Modules: ``versions`` (which version a build gets), ``build_request`` (labels, tags and the
engine's build arguments, as data), ``build_stream`` (the engine's build output read line by
line: steps, cache hits, the failing step), ``engine_build`` (the build on a Docker engine),
``push`` (tag and push, then the digest from the registry), ``artifact`` (a file's sha256 read
from the built image), ``registry_access`` (an environment's registry settings with the
password resolved), ``build_image`` (the whole build, step by step), ``errors``.
"""
