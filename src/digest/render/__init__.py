"""Render: Jinja2 → MJML → mjml-python → premailer, once per edition variant.

What leaves this stage is a `RenderedBody` whose HTML and text hold unguessable
placeholders; `skeleton.MessageSkeleton` turns it into pre-encoded message bytes and
fills the placeholders per recipient in one pass (never by rendering the compiled
HTML as a template again). See docs/render.md.
"""
