"""The redraw pacer: slower frames when drawing takes more than its share of the CPU, fastest when not."""

from __future__ import annotations

from quanttui.tui.pacing import Pacer


class Clocks:
    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def tick(self, wall: float, cpu: float) -> None:
        self.wall += wall
        self.cpu += cpu


def test_frames_slow_down_until_drawing_fits_its_share_and_speed_up_again():
    c = Clocks()
    pacer = Pacer(fastest=0.1, slowest=1.0, share=0.025, cores=2, clocks=(lambda: c.wall, lambda: c.cpu))
    wait = pacer.start()
    assert wait == 0.1
    shares = []
    for _ in range(30):  # every frame costs 15 ms of CPU, whatever the wait
        c.tick(wait, 0.015)
        shares.append(0.015 / (wait * 2))
        wait = pacer.next()
    assert shares[0] == 0.075 and abs(shares[-1] - 0.025) < 0.002  # settles at its share
    assert 0.28 < wait < 0.32
    for _ in range(30):  # frames got cheap (the answer ended, or a fast machine)
        c.tick(wait, 0.001)
        wait = pacer.next()
    assert wait == 0.1
    for _ in range(10):  # and never slower than `slowest`
        c.tick(wait, 5.0)
        wait = pacer.next()
    assert wait == 1.0
