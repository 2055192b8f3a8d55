"""The one exception type infntk raises for bad input or ill-posed requests."""


class InfntkError(ValueError):
    """infntk's error for bad input or an ill-posed problem.

    The message always names where the problem is (the layer, the function or the file)
    and what is wrong, so that it can be shown to a user as it is.
    """
