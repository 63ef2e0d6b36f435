package dev.wsproxy.internal;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** The score at the ends of the hash range, which no key can be made to reach through xxHash64. */
class RendezvousTest {

    @Test
    void theLargestHashScoresHighestAndFinite() {
        // Top 53 bits all ones: (2^53 - 1) + 0.5 rounds to 2^53, so u was exactly 1 and the score -Infinity.
        double top = Rendezvous.scoreOf(-1L, 1);
        // The next 53-bit value down, 2^53 - 2.
        double belowTop = Rendezvous.scoreOf(-1L << 12, 1);
        assertThat(top).isFinite().isPositive().isGreaterThan(belowTop);
        assertThat(belowTop).isFinite().isPositive();
        assertThat(Rendezvous.scoreOf(-1L, 1000)).isFinite().isGreaterThan(top);
    }

    @Test
    void theSmallestHashScoresLowestAndAboveZero() {
        double bottom = Rendezvous.scoreOf(0L, 1);
        assertThat(bottom).isFinite().isPositive().isLessThan(Rendezvous.scoreOf(1L << 11, 1));
    }
}
