"""The demo in a few lines of Python: debug ToyWorld's classifier, then read the result.

python examples/quickstart.py
"""

from failmodes import Debugger
from failmodes.toyworld import ToyWorld, demo_components

world = ToyWorld(seed=0, attribute="background", strength=0.95)
dbg = Debugger(**demo_components(world))
result = dbg.run(world.train(), world.debug(), world.test(), seed=0)

print(result.to_frame().round(3).to_string())
print("\n".join(result.modes.describe()[:10]))
result.report("quickstart-report.html")
