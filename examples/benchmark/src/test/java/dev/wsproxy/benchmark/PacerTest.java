package dev.wsproxy.benchmark;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The open-loop clock on its own: on schedule, never early, round robin, and stopping when told or refused. */
class PacerTest {

    @Test
    void sendsEachMessageNoEarlierThanItsDueTimeOnTheConnectionsInTurn() {
        double perSecond = 20_000;
        List<Long> times = new ArrayList<>();
        List<Integer> indexes = new ArrayList<>();
        long before = System.nanoTime();
        Pacer pacer = new Pacer(perSecond, 3, index -> {
            times.add(System.nanoTime());
            indexes.add(index);
            return true;
        }, () -> times.size() < 200);

        pacer.run();

        assertThat(pacer.sent()).isEqualTo(200);
        assertThat(pacer.refused()).isFalse();
        for (int n = 0; n < times.size(); n++) {
            // The pacer's start is after "before": message n may leave no earlier than n / rate after it.
            assertThat(times.get(n) - before).as("message %d", n).isGreaterThanOrEqualTo((long) (n * 1e9 / perSecond));
            assertThat(indexes.get(n)).isEqualTo(n % 3);
        }
        assertThat(pacer.takeLag().getTotalCount()).isEqualTo(200);
        assertThat(pacer.takeLag().getTotalCount()).isZero();
    }

    @Test
    void catchesUpOnItsOwnScheduleAfterAStallAndReportsTheLag() {
        // 20,000 a second: 50 µs apart. Message 10's send stalls 20 ms, during which 400 more fall due.
        long stall = TimeUnit.MILLISECONDS.toNanos(20);
        List<Long> times = new ArrayList<>();
        Pacer pacer = new Pacer(20_000, 1, index -> {
            times.add(System.nanoTime());
            if (times.size() == 11) {
                long until = System.nanoTime() + stall;
                while (System.nanoTime() < until) {
                    Thread.onSpinWait(); // the generator's core busy elsewhere
                }
            }
            return true;
        }, () -> times.size() < 500);

        pacer.run();

        // On schedule, the 400 messages due during the stall leave right after it: message 410 is due 20 ms after
        // message 10. A pacer that counted from its last send would take 20 ms more to send them.
        assertThat(times.get(410) - times.get(10)).isLessThan(stall + TimeUnit.MILLISECONDS.toNanos(10));
        assertThat(pacer.takeLag().getMaxValue()).isGreaterThanOrEqualTo(stall - TimeUnit.MICROSECONDS.toNanos(100));
    }

    @Test
    @Timeout(10)
    void stopsAtTheFirstRefusal() {
        List<Integer> indexes = new ArrayList<>();
        Pacer pacer = new Pacer(100_000, 2, index -> {
            indexes.add(index);
            return indexes.size() < 5;
        }, () -> indexes.size() < 1_000);

        pacer.run();

        assertThat(pacer.refused()).isTrue();
        assertThat(indexes).containsExactly(0, 1, 0, 1, 0);
        assertThat(pacer.sent()).isEqualTo(4);
    }

    @Test
    void rejectsNonPositiveRatesAndNoConnections() {
        assertThatThrownBy(() -> new Pacer(0, 1, index -> true, () -> false)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> new Pacer(Double.NaN, 1, index -> true, () -> false))
                .isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> new Pacer(10, 0, index -> true, () -> false)).isInstanceOf(IllegalArgumentException.class);
    }
}
