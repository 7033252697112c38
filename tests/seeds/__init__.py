"""Seed clients: each seed's documented calls, run against a live ``herald up``.

Each ``test_seedNNN.py`` is the client a reader of ``seeds/NNN_*.txt`` would
write: the seed's literal paths, bodies and answer fields, plus Herald's
``Authorization`` header. Where Herald answers differently on purpose, README
("Seed routes" and "What a client written from a seed reads and names") says
so, and the client reads Herald's documented equivalent. ``env/seedNNN.env``
holds each seed's variables for ``test_seed_env.py``.
"""
