"""One helper the benchmark scripts share: print a table row and keep it in a file at once."""


def emit(path, text: str) -> None:
    """Print a row and append it to `path` at once: a study cut short keeps what it measured."""
    print(text, flush=True)
    if path:
        with open(path, "a") as f:
            f.write(text + "\n")
