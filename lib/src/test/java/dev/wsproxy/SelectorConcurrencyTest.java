package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Stateful selectors shared by many threads, as a route's instance is by Jetty's threads during a burst of
 * handshakes: no pick is lost or doubled, and the spread stays what it is on one thread. No timing is asserted.
 */
class SelectorConcurrencyTest {

    private static final int THREADS = 16;
    private static final int PICKS_PER_THREAD = 10_000;

    private final ExecutorService executor = Executors.newFixedThreadPool(THREADS);

    @AfterEach
    void stop() throws Exception {
        executor.shutdownNow();
        assertThat(executor.awaitTermination(10, TimeUnit.SECONDS)).isTrue();
    }

    /** Runs {@code task} on every thread at once and sums the per-backend counts they return. */
    private long[] runOnAllThreads(int backends, ThreadTask task) throws Exception {
        CountDownLatch start = new CountDownLatch(1);
        List<Future<long[]>> results = new ArrayList<>();
        for (int t = 0; t < THREADS; t++) {
            results.add(executor.submit(() -> {
                long[] counts = new long[backends];
                start.await();
                task.run(counts);
                return counts;
            }));
        }
        start.countDown();
        long[] total = new long[backends];
        for (Future<long[]> result : results) {
            long[] counts = result.get(60, TimeUnit.SECONDS);
            for (int i = 0; i < backends; i++) {
                total[i] += counts[i];
            }
        }
        return total;
    }

    @FunctionalInterface
    private interface ThreadTask {
        void run(long[] counts) throws Exception;
    }

    @Test
    void weightedRoundRobinKeepsExactRatiosUnderConcurrentPicks() throws Exception {
        BackendSelector selector = BackendSelector.weightedRoundRobin().forRoute("/ws/");
        StubSelectionContext context = StubSelectionContext.weighted(5, 1, 1);

        long[] counts = runOnAllThreads(3, threadCounts -> {
            for (int i = 0; i < PICKS_PER_THREAD; i++) {
                threadCounts[context.indexOf(selector.select(context))]++;
            }
        });

        long total = (long) THREADS * PICKS_PER_THREAD;
        assertThat(counts[0] + counts[1] + counts[2]).isEqualTo(total);
        // The picks are serialised, so the whole run is one smooth sequence: every backend is within its own weight
        // of its exact share.
        int[] weights = {5, 1, 1};
        for (int i = 0; i < 3; i++) {
            double exact = total * weights[i] / 7.0;
            assertThat((double) counts[i]).as("picks of b%d", i).isBetween(exact - weights[i], exact + weights[i]);
        }
        // And it still interleaves afterwards: the state was not corrupted.
        List<Integer> next = new ArrayList<>();
        for (int i = 0; i < 7; i++) {
            next.add(context.indexOf(selector.select(context)));
        }
        assertThat(next).containsExactlyInAnyOrder(0, 0, 0, 0, 0, 1, 2);
    }

    @Test
    void leastConnectionsBalancesOpenSessionsUnderConcurrentOpensAndUnevenCloses() throws Exception {
        BackendSelector selector = BackendSelector.leastConnections().forRoute("/ws/");
        StubSelectionContext context = new StubSelectionContext(Backend.of("ws://b0:1"),
                Backend.of("ws://b1:1").withWeight(2), Backend.of("ws://b2:1").withWeight(3),
                Backend.of("ws://down:1"));
        context.status(3).state = BackendStatus.State.DOWN;
        int closingSteps = PICKS_PER_THREAD - 1_000;

        long[] picks = runOnAllThreads(4, threadCounts -> {
            int[] mine = new int[3];
            for (int i = 0; i < PICKS_PER_THREAD; i++) {
                int picked = context.indexOf(context.open(selector));
                threadCounts[picked]++;
                mine[picked]++;
                // Uneven closes, all but the last 1,000 steps: 3 steps in 7 close one session of this thread,
                // on b0 whenever it has one there, so b0 keeps losing sessions that the picks must give back.
                if (i < closingSteps && i % 7 < 3) {
                    int victim = mine[0] > 0 ? 0 : mine[1] >= mine[2] ? 1 : 2;
                    context.close(context.backend(victim));
                    mine[victim]--;
                }
            }
        });

        assertThat(picks[0] + picks[1] + picks[2] + picks[3]).isEqualTo((long) THREADS * PICKS_PER_THREAD);
        assertThat(picks[3]).as("a down backend is never picked").isZero();
        int[] active = context.activeCounts();
        long open = active[0] + active[1] + active[2];
        long closed = (long) THREADS * (closingSteps / 7 * 3 + Math.min(closingSteps % 7, 3));
        assertThat(open).as("every open and close counted once").isEqualTo((long) THREADS * PICKS_PER_THREAD - closed);
        // The open sessions end up in proportion to the weights (1:2:3): the sessions per unit of weight differ by
        // at most the picks that can be in flight at once (one per thread) and rounding.
        double[] perWeight = {active[0] / 1.0, active[1] / 2.0, active[2] / 3.0};
        double spread = Math.max(perWeight[0], Math.max(perWeight[1], perWeight[2]))
                - Math.min(perWeight[0], Math.min(perWeight[1], perWeight[2]));
        assertThat(spread).as("sessions per weight %s", java.util.Arrays.toString(active))
                .isLessThanOrEqualTo(THREADS + 1);
        assertThat(active[3]).isZero();
    }

    @Test
    void leastConnectionsSpreadsABurstThatReadsTheSameCounts() throws Exception {
        // Nobody counts the picks (all handshakes still in flight): only the tie rotation spreads them.
        BackendSelector selector = BackendSelector.leastConnections().forRoute("/ws/");
        StubSelectionContext context = StubSelectionContext.ofSize(4);

        long[] counts = runOnAllThreads(4, threadCounts -> {
            for (int i = 0; i < PICKS_PER_THREAD; i++) {
                threadCounts[context.indexOf(selector.select(context))]++;
            }
        });

        // One atomic counter hands out the turns: exactly a quarter each.
        assertThat(counts).containsExactly(40_000, 40_000, 40_000, 40_000);
    }

    @Test
    void roundRobinAndConsistentHashFallbackHandOutExactTurns() throws Exception {
        for (BackendSelector selector : List.of(BackendSelector.roundRobin().forRoute("/ws/"),
                BackendSelector.consistentHash(HashKeys.header("X-None")).forRoute("/ws/"))) {
            StubSelectionContext context = StubSelectionContext.ofSize(5);
            long[] counts = runOnAllThreads(5, threadCounts -> {
                for (int i = 0; i < PICKS_PER_THREAD; i++) {
                    threadCounts[context.indexOf(selector.select(context))]++;
                }
            });
            assertThat(counts).as("%s", selector).containsExactly(32_000, 32_000, 32_000, 32_000, 32_000);
        }
    }
}
