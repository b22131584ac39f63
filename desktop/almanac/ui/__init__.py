"""PySide6 desktop UI. Talks to almanac.core only through the services built in
almanac.app.services."""
