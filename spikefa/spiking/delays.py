"""The delay lines of the batched engine (forward_delay, feedback_delay = D): per stream, the values
a group sent in the last D steps, slot-major (the n values of 1, 2, … D steps ago), in place."""


def oldest(line, n: int):
    """The slot of a delay line (batch × D·n, slot-major) that arrives now: D steps old."""
    return line[:, line.shape[1] - n :]


def push(line, new, xp) -> None:
    """Shift a delay line by one step and put `new` in its first slot."""
    n = new.shape[1]
    if line.shape[1] > n:
        line[:, n:] = xp.copy(line[:, :-n])
    line[:, :n] = new


def split(line, parts: int) -> list:
    """The delay lines of the groups that share one state entry (e⁺, e⁻), as views."""
    width = line.shape[1] // parts
    return [line[:, k * width : (k + 1) * width] for k in range(parts)]
