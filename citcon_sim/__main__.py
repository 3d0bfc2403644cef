from citcon_sim.cli import main

main(prog_name="citcon-sim")
