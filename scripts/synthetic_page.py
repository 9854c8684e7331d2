#!/usr/bin/env python3
"""Draws an A4 page at 150 dpi (1240 x 1754, portrait: a non-square input) with a title, paragraphs, a table and a
figure, for the document-layout model in the preprocessing parity test. Deterministic.

    python3 scripts/synthetic_page.py OUT.png
"""
import random
import sys

import cv2
import numpy as np

WORDS = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et "
         "dolore magna aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris nisi aliquip").split()


def main():
    rnd = random.Random(7)
    page = np.full((1754, 1240, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(page, "Detection of Small Objects in Aerial Images", (120, 160), font, 1.5, (0, 0, 0), 3, cv2.LINE_AA)
    y = 260
    for _ in range(2):
        for _ in range(8):
            line = " ".join(rnd.choice(WORDS) for _ in range(11))
            cv2.putText(page, line, (120, y), font, 0.8, (20, 20, 20), 2, cv2.LINE_AA)
            y += 36
        y += 40
    # A table: a grid with numbers.
    x0, y0, cw, ch = 160, y + 20, 230, 46
    for r in range(5):
        for c in range(4):
            cv2.rectangle(page, (x0 + c * cw, y0 + r * ch), (x0 + (c + 1) * cw, y0 + (r + 1) * ch), (0, 0, 0), 2)
            cv2.putText(page, f"{rnd.randint(10, 999)}.{rnd.randint(0, 9)}", (x0 + c * cw + 30, y0 + r * ch + 32),
                        font, 0.8, (0, 0, 0), 2, cv2.LINE_AA)
    # A figure: a shaded picture with shapes.
    fy = y0 + 5 * ch + 60
    grad = np.linspace(60, 220, 900).astype(np.uint8)
    page[fy:fy + 300, 170:1070] = np.stack([np.tile(grad, (300, 1))] * 3, axis=-1)
    cv2.circle(page, (450, fy + 150), 110, (30, 90, 200), -1)
    cv2.rectangle(page, (700, fy + 60), (950, fy + 260), (40, 160, 60), -1)
    cv2.putText(page, "Figure 1: objects per class", (330, fy + 340), font, 0.8, (0, 0, 0), 2, cv2.LINE_AA)
    cv2.imwrite(sys.argv[1], page)


if __name__ == "__main__":
    main()
