"""``embstore serve``: an HTTP JSON API and an offline web explorer over one store.

Starlette and uvicorn are optional (``pip install 'embstore[serve]'``); nothing else in
embstore imports this package. Layers: ``server`` (sockets, uvicorn) -> ``app`` (routes,
errors) -> ``params`` (parsing and caps, described in ``api_spec``) and ``served_store``
(one open store, refreshed before answering) -> the ``Store`` API.
"""
