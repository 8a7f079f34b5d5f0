"""The PSP simulator: a separate process that speaks the Stripe and Adyen wire formats.

Start it with `python -m apps.psp_simulator --port 8090`, or in production-like runs with
`gunicorn apps.psp_simulator.wsgi:app -b 127.0.0.1:8090 -k gthread -w 1 --threads 128`.
See docs/psp-simulator.md.
"""
