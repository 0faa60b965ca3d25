"""Your API routes: app.py serves every router listed in `ROUTERS`.

To add routes, write a module beside this one with a router (`api/orders.py`:
`router = APIRouter(prefix="/orders", tags=["orders"])` and its `@router.get(...)` functions),
then list it here. docs/api.md shows one end to end.
"""
{%- if cookiecutter.cache_backend != "none" %}

from . import examples

ROUTERS = (examples.router,)
{%- else %}

from fastapi import APIRouter

ROUTERS: tuple[APIRouter, ...] = ()
{%- endif %}
