"""Render: Jinja2 → MJML → mjml-python → premailer, once per edition variant.

What leaves this stage is a `RenderedBody` whose HTML and text hold
unguessable placeholders; `message.py` fills them per recipient with a single
regex pass (never by rendering the compiled HTML as a template again).
"""
