"""`python -m digest` and the `digest` console script.

The CLI is imported inside `run()`, not at the top: a process pool started with `spawn` re-imports the main
script in every child, and importing the whole CLI costs about a second of CPU per parse process.
"""


def run() -> None:
    from digest.cli import main

    main()


if __name__ == "__main__":
    run()
