package dev.wsproxy.internal;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import java.time.temporal.ChronoUnit;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.random.RandomGenerator;

import org.junit.jupiter.api.Test;

import dev.wsproxy.StandardError;
import dev.wsproxy.TimeoutPolicy;

/**
 * A user's {@link TimeoutPolicy} is read once per session: values out of range are replaced (a ping interval the
 * proxy cannot use means no pings), and logged at WARN once per policy class, not once per session. The tests read
 * slf4j-simple's lines on standard error, where the test class path sends them.
 */
class TimeoutsTest {

    @Test
    void takesAUserPolicyInRangeAsItIsAndLogsNothing() {
        record InRange(Duration connectTimeout, Duration idleTimeout) implements TimeoutPolicy {
            @Override
            public Duration pingInterval() {
                return Duration.ofSeconds(30);
            }
        }
        String logged = stderrOf(() -> Timeouts.copyOf(new InRange(Duration.ofSeconds(3), Duration.ofMinutes(5))));

        assertThat(logged).isEmpty();
        Timeouts copy = Timeouts.copyOf(new InRange(Duration.ofSeconds(3), Duration.ofMinutes(5)));
        assertThat(copy).isEqualTo(new Timeouts(Duration.ofSeconds(3), Duration.ofMinutes(5),
                TimeoutPolicy.DEFAULT_CLOSE_TIMEOUT, Duration.ZERO, Duration.ofSeconds(30)));
        assertThat(copy.pings()).isTrue();
    }

    @Test
    void sendsNoPingsForAnIntervalItCannotUseAndSaysSoOncePerPolicyClass() {
        record FastPings(Duration pingInterval) implements TimeoutPolicy {
            @Override
            public Duration connectTimeout() {
                return Duration.ofSeconds(3);
            }

            @Override
            public Duration idleTimeout() {
                return Duration.ofMinutes(1);
            }
        }
        Timeouts[] copy = new Timeouts[1];
        String first = stderrOf(() -> copy[0] = Timeouts.copyOf(new FastPings(Duration.ofMillis(50))));

        assertThat(copy[0].pings()).isFalse();
        assertThat(copy[0].connectionIdleTimeout()).isEqualTo(Duration.ofMinutes(1));
        assertThat(first).contains("WARN", FastPings.class.getName(), "ping PT0.05S", "no pings",
                "at least PT0.1S and shorter than the idle timeout");
        // Another session, another instance: the same class is not logged again.
        String second = stderrOf(() -> copy[0] = Timeouts.copyOf(new FastPings(Duration.ofMinutes(2))));
        assertThat(copy[0].pings()).as("an interval not shorter than the idle timeout").isFalse();
        assertThat(second).isEmpty();
    }

    @Test
    void replacesAValueOutOfRangeByItsDefaultAndSaysWhichItReplaced() {
        record Broken(Duration connectTimeout, Duration idleTimeout) implements TimeoutPolicy {
            @Override
            public Duration closeTimeout() {
                return null;
            }
        }
        Timeouts[] copy = new Timeouts[1];
        String logged = stderrOf(() -> copy[0] = Timeouts.copyOf(new Broken(Duration.ofSeconds(-1), Duration.ZERO)));

        assertThat(copy[0]).isEqualTo(new Timeouts(TimeoutPolicy.DEFAULT_CONNECT_TIMEOUT, Duration.ZERO,
                TimeoutPolicy.DEFAULT_CLOSE_TIMEOUT, Duration.ZERO, Duration.ZERO));
        assertThat(logged).contains("WARN", Broken.class.getName(), "returned connect PT-1S", "close null",
                "using connect PT10S", "close PT10S");
    }

    @Test
    void logsAValueOutOfRangeAndAnExceptionOncePerPolicyClassEach() {
        // Both warnings shared one set: a policy whose value was out of range once (null before its live
        // configuration loaded) never had its later exceptions logged, nor their stack traces.
        final class NotLoadedThenBroken implements TimeoutPolicy {
            private final boolean loaded;

            NotLoadedThenBroken(boolean loaded) {
                this.loaded = loaded;
            }

            @Override
            public Duration connectTimeout() {
                if (loaded) {
                    throw new IllegalStateException("configuration service down");
                }
                return null;
            }

            @Override
            public Duration idleTimeout() {
                return Duration.ofMinutes(1);
            }
        }
        String outOfRange = stderrOf(() -> Timeouts.copyOf(new NotLoadedThenBroken(false)));
        String threw = stderrOf(() -> Timeouts.copyOf(new NotLoadedThenBroken(true)));
        String again = stderrOf(() -> {
            Timeouts.copyOf(new NotLoadedThenBroken(false));
            Timeouts.copyOf(new NotLoadedThenBroken(true));
        });

        assertThat(outOfRange).contains("WARN", NotLoadedThenBroken.class.getName(), "returned connect null");
        assertThat(threw).contains("WARN", NotLoadedThenBroken.class.getName(), "failed; using the defaults",
                "configuration service down");
        assertThat(again).as("each logged once per class").isEmpty();
    }

    @Test
    void capsDurationsMeantAsForeverAndLogsNothing() {
        // Forever everywhere, and pings every 200 years under an idle timeout of 300: in range, if pointless.
        record Forever(Duration idleTimeout, Duration pingInterval) implements TimeoutPolicy {
            @Override
            public Duration connectTimeout() {
                return ChronoUnit.FOREVER.getDuration();
            }

            @Override
            public Duration closeTimeout() {
                return ChronoUnit.FOREVER.getDuration();
            }

            @Override
            public Duration maxLifetime() {
                return ChronoUnit.FOREVER.getDuration();
            }
        }
        Duration year = ChronoUnit.YEARS.getDuration();
        Timeouts[] copies = new Timeouts[2];
        String logged = stderrOf(() -> {
            copies[0] = Timeouts.copyOf(new Forever(ChronoUnit.FOREVER.getDuration(), Duration.ofHours(1)));
            copies[1] = Timeouts.copyOf(new Forever(year.multipliedBy(300), year.multipliedBy(200)));
        });

        assertThat(logged).isEmpty();
        assertThat(copies[0]).isEqualTo(new Timeouts(Durations.LONGEST, Durations.LONGEST, Durations.LONGEST,
                Durations.LONGEST, Duration.ofHours(1)));
        assertThat(copies[0].pings()).isTrue();
        assertThat(copies[0].writeTimeoutNanos()).isEqualTo(Duration.ofHours(2).toNanos());
        assertThat(copies[1].idleTimeout()).isEqualTo(Durations.LONGEST);
        assertThat(copies[1].pingInterval()).isEqualTo(Durations.LONGEST);
        assertThat(copies[1].pings()).as("pings every 100 years under the same idle timeout: none").isFalse();
        assertThat(copies[1].writeTimeoutNanos()).isEqualTo(Durations.LONGEST.toNanos());
    }

    @Test
    void roundsAPositiveDurationShorterThanAMillisecondUpToOne() {
        Duration half = Duration.ofNanos(500_000);
        Timeouts timeouts = new Timeouts(half, half, half, half, Duration.ZERO);
        assertThat(List.of(timeouts.connectTimeout(), timeouts.idleTimeout(), timeouts.closeTimeout(),
                timeouts.maxLifetime())).containsOnly(Duration.ofMillis(1));
        assertThat(timeouts.pingInterval()).as("0 stays none").isZero();
    }

    @Test
    void drawsEachSessionsMaximumLifetimeUpTo15PercentShorterThanThePolicysAndAtLeastOneMillisecond() {
        Timeouts hour = new Timeouts(Duration.ofSeconds(3), Duration.ZERO, Duration.ofSeconds(10), Duration.ofHours(1),
                Duration.ZERO);
        assertThat(hour.sessionLifetimeMillis(drawingZero())).isEqualTo(3_600_000);
        assertThat(hour.sessionLifetimeMillis(drawingTheLargest())).isEqualTo(3_060_000);
        SplittableRandom random = new SplittableRandom(1);
        Set<Long> drawn = new HashSet<>();
        for (int i = 0; i < 1_000; i++) {
            drawn.add(hour.sessionLifetimeMillis(random));
        }
        assertThat(drawn).allSatisfy(millis -> assertThat(millis).isBetween(3_060_000L, 3_600_000L))
                .hasSizeGreaterThan(990);

        Timeouts none = new Timeouts(Duration.ofSeconds(3), Duration.ZERO, Duration.ofSeconds(10), Duration.ZERO,
                Duration.ZERO);
        assertThat(none.sessionLifetimeMillis(drawingTheLargest())).as("no limit").isZero();
        Timeouts instant = new Timeouts(Duration.ofSeconds(3), Duration.ZERO, Duration.ofSeconds(10),
                Duration.ofNanos(1), Duration.ZERO);
        assertThat(instant.sessionLifetimeMillis(drawingZero())).as("a limit, however short").isEqualTo(1);
        Timeouts forever = new Timeouts(Duration.ofSeconds(3), Duration.ZERO, Duration.ofSeconds(10),
                ChronoUnit.FOREVER.getDuration(), Duration.ZERO);
        assertThat(forever.sessionLifetimeMillis(drawingTheLargest())).as("no overflow at the cap")
                .isEqualTo(Durations.LONGEST.toMillis() - Durations.LONGEST.toMillis() * 15 / 100);
    }

    /** A generator whose {@code nextLong(bound)} always draws 0. */
    private static RandomGenerator drawingZero() {
        return new FixedDraw(0);
    }

    /** A generator whose {@code nextLong(bound)} always draws the largest value below the bound. */
    private static RandomGenerator drawingTheLargest() {
        return new FixedDraw(-1);
    }

    /** Draws {@code offset} (0 or more), or the bound plus {@code offset} (below 0). */
    private record FixedDraw(long offset) implements RandomGenerator {
        @Override
        public long nextLong() {
            throw new UnsupportedOperationException();
        }

        @Override
        public long nextLong(long bound) {
            return offset < 0 ? bound + offset : offset;
        }
    }

    /** What {@code action} wrote to standard error, slf4j-simple's output. */
    private static String stderrOf(Runnable action) {
        try {
            return StandardError.of(action::run);
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }
}
