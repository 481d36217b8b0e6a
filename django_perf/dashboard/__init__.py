"""The admin "Performance" dashboard: cards, charts, routes and cache actions.

The page is registered with the admin by ``django_perf/admin.py``; this package
holds its model (the entry in the admin index and the action permissions),
the data it shows, the SVG charts, the views and the forms.
"""
