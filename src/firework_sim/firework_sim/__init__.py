"""robosuite (MuJoCo) robots for the simulated fleet, scripted operator experts and episode collection."""
