package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.stream.IntStream;

import org.junit.jupiter.api.Test;

/**
 * The rendezvous hashing behind {@link BackendSelector#consistentHash} and {@link BackendSelector#ipHash()}: minimal
 * disruption when backends come and go, weights, and the same answer everywhere. The backend URIs and keys are fixed,
 * so every number here is deterministic.
 */
class RendezvousHashingTest {

    private static final int KEYS = 10_000;

    private static Backend[] pickAll(StubSelectionContext context) {
        BackendSelector selector = BackendSelector.consistentHash(HashKeys.header("X-User")).forRoute("/ws/");
        Backend[] picks = new Backend[KEYS];
        for (int i = 0; i < KEYS; i++) {
            picks[i] = selector.select(context.header("X-User", "user-" + i));
        }
        return picks;
    }

    @Test
    void removingOneOfFiveBackendsMovesExactlyItsOwnKeys() {
        StubSelectionContext five = StubSelectionContext.ofSize(5);
        Backend removed = five.backend(2);
        StubSelectionContext four = new StubSelectionContext(five.backend(0), five.backend(1), five.backend(3),
                five.backend(4));

        Backend[] before = pickAll(five);
        Backend[] after = pickAll(four);

        int moved = 0;
        int[] receivedBy = new int[5];
        for (int i = 0; i < KEYS; i++) {
            if (before[i].equals(removed)) {
                moved++;
                receivedBy[five.indexOf(after[i])]++;
            } else {
                assertThat(after[i]).as("key user-%d was not on the removed backend: it stays", i)
                        .isEqualTo(before[i]);
            }
        }
        // About 1/N of the keys move (2,000 expected), and they spread over the four others (500 each expected).
        assertThat(moved).isBetween(1_800, 2_200);
        assertThat(receivedBy[2]).isZero();
        for (int index : new int[] {0, 1, 3, 4}) {
            assertThat(receivedBy[index]).as("keys moved to b%d", index).isBetween(moved / 4 - 120, moved / 4 + 120);
        }
    }

    @Test
    void aBackendThatIsDownLosesItsKeysAndGetsExactlyThemBack() {
        StubSelectionContext context = StubSelectionContext.ofSize(5);
        Backend[] before = pickAll(context);
        context.status(4).state = BackendStatus.State.DOWN;
        Backend[] during = pickAll(context);
        context.status(4).state = BackendStatus.State.UP;
        Backend[] after = pickAll(context);

        for (int i = 0; i < KEYS; i++) {
            assertThat(after[i]).isEqualTo(before[i]);
            if (!before[i].equals(context.backend(4))) {
                assertThat(during[i]).isEqualTo(before[i]);
            }
        }
    }

    @Test
    void addingABackendTakesOnlyTheKeysItWins() {
        StubSelectionContext five = StubSelectionContext.ofSize(6);
        StubSelectionContext withoutSixth = new StubSelectionContext(five.backend(0), five.backend(1),
                five.backend(2), five.backend(3), five.backend(4));
        Backend[] before = pickAll(withoutSixth);
        Backend[] after = pickAll(five);
        int taken = 0;
        for (int i = 0; i < KEYS; i++) {
            if (!after[i].equals(before[i])) {
                assertThat(after[i]).isEqualTo(five.backend(5));
                taken++;
            }
        }
        assertThat(taken).as("about 1/6 of the keys").isBetween(1_500, 1_850);
    }

    @Test
    void sharesFollowTheWeights() {
        StubSelectionContext context = StubSelectionContext.weighted(1, 2, 3, 4);
        int[] counts = new int[4];
        for (Backend backend : pickAll(context)) {
            counts[context.indexOf(backend)]++;
        }
        assertThat(counts[0]).isBetween(850, 1_150);
        assertThat(counts[1]).isBetween(1_800, 2_200);
        assertThat(counts[2]).isBetween(2_750, 3_250);
        assertThat(counts[3]).isBetween(3_700, 4_300);
    }

    @Test
    void evenSharesWithEqualWeights() {
        StubSelectionContext context = StubSelectionContext.ofSize(5);
        int[] counts = new int[5];
        for (Backend backend : pickAll(context)) {
            counts[context.indexOf(backend)]++;
        }
        assertThat(IntStream.of(counts)).allSatisfy(count -> assertThat(count).isBetween(1_850, 2_150));
    }

    @Test
    void theSameKeyPicksTheSameBackendOnEveryInstanceWhateverTheListOrder() {
        StubSelectionContext context = StubSelectionContext.ofSize(5);
        List<Backend> reversed = new ArrayList<>(context.backends());
        Collections.reverse(reversed);
        StubSelectionContext reversedContext = new StubSelectionContext(reversed.toArray(new Backend[0]));

        Backend[] first = pickAll(context);
        Backend[] second = pickAll(context);
        Backend[] third = pickAll(reversedContext);
        assertThat(second).containsExactly(first);
        assertThat(third).containsExactly(first);
    }

    @Test
    void theCaseOfABackendsHostDoesNotChangeItsKeys() {
        // Backend.equals ignores the host's case (URI.equals does): so must the hash, or two instances configured with
        // the two spellings, or an updateBackends that only changed the case, would send a user to two backends.
        String[] hosts = {"Chat-1.Example", "chat-2.example", "CHAT-3.EXAMPLE", "[::A]", "10.0.0.5"};
        Backend[] written = new Backend[hosts.length];
        Backend[] lowered = new Backend[hosts.length];
        for (int i = 0; i < hosts.length; i++) {
            written[i] = Backend.of("ws://" + hosts[i] + ":9000/chat");
            lowered[i] = Backend.of("ws://" + hosts[i].toLowerCase(java.util.Locale.ROOT) + ":9000/chat");
            assertThat(written[i]).isEqualTo(lowered[i]);
        }

        Backend[] picksWritten = pickAll(new StubSelectionContext(written));
        Backend[] picksLowered = pickAll(new StubSelectionContext(lowered));
        for (int i = 0; i < KEYS; i++) {
            assertThat(picksWritten[i].uri().getHost()).as("key user-%d", i)
                    .isEqualToIgnoringCase(picksLowered[i].uri().getHost());
        }
    }

    @Test
    void thePicksArePinnedAcrossReleases() {
        // Changing the hash would move every sticky client of every deployment on upgrade: these must never change.
        StubSelectionContext context = StubSelectionContext.ofSize(5);
        BackendSelector selector = BackendSelector.consistentHash(HashKeys.header("X-User")).forRoute("/ws/");
        List<Integer> picks = new ArrayList<>();
        for (String user : new String[] {"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"}) {
            picks.add(context.indexOf(selector.select(context.header("X-User", user))));
        }
        assertThat(picks).containsExactly(2, 4, 1, 3, 4, 2, 2, 3);
    }
}
