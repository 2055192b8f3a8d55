import jax
from hypothesis import settings

jax.config.update("jax_enable_x64", True)

# Every Hypothesis test draws the same examples on every run and machine (CI included): a failure
# is reproducible from the commit alone, and no run passes or fails by the luck of its seed. Tests
# may still set their own max_examples / deadline; derandomize comes from here.
settings.register_profile("infntk", derandomize=True, database=None, print_blob=True)
settings.load_profile("infntk")
