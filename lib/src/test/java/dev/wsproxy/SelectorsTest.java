package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.Supplier;
import java.util.stream.IntStream;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** Each built-in selector on its own, against a stub context: exact orders, ratios and stickiness; no network. */
class SelectorsTest {

    static Stream<Arguments> builtIns() {
        return Stream.of(
                Arguments.of("roundRobin", (Supplier<BackendSelector>) BackendSelector::roundRobin),
                Arguments.of("weightedRoundRobin", (Supplier<BackendSelector>) BackendSelector::weightedRoundRobin),
                Arguments.of("random", (Supplier<BackendSelector>) BackendSelector::random),
                Arguments.of("powerOfTwoChoices", (Supplier<BackendSelector>) BackendSelector::powerOfTwoChoices),
                Arguments.of("leastConnections", (Supplier<BackendSelector>) BackendSelector::leastConnections),
                Arguments.of("ipHash", (Supplier<BackendSelector>) BackendSelector::ipHash),
                Arguments.of("consistentHash(header X-User)", (Supplier<BackendSelector>)
                        () -> BackendSelector.consistentHash(HashKeys.header("X-User"))));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("builtIns")
    void picksOnlyCandidatesAndReturnsNullWhenThereIsNone(String name, Supplier<BackendSelector> factory) {
        BackendSelector selector = factory.get().forRoute("/ws/");
        StubSelectionContext context = StubSelectionContext.ofSize(3).header("X-User", "alice");
        assertThat(selector).hasToString(name);

        context.status(0).state = BackendStatus.State.DOWN;
        context.status(2).state = BackendStatus.State.DRAINING;
        for (int i = 0; i < 50; i++) {
            assertThat(selector.select(context)).isEqualTo(context.backend(1));
        }
        context.status(1).state = BackendStatus.State.DOWN;
        assertThat(selector.select(context)).as("no candidate left").isNull();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("builtIns")
    void usesBackupsOnlyWhileNoPrimaryIsUp(String name, Supplier<BackendSelector> factory) {
        BackendSelector selector = factory.get().forRoute("/ws/");
        StubSelectionContext context = new StubSelectionContext(Backend.of("ws://primary:1"),
                Backend.of("ws://backup:1").asBackup()).header("X-User", "alice");
        for (int i = 0; i < 20; i++) {
            assertThat(selector.select(context)).isEqualTo(context.backend(0));
        }
        context.status(0).state = BackendStatus.State.DOWN;
        assertThat(selector.select(context)).isEqualTo(context.backend(1));
    }

    @Test
    void statefulSelectorsGiveEachRouteItsOwnInstanceAndStatelessOnesAreShared() {
        for (BackendSelector stateful : List.of(BackendSelector.roundRobin(), BackendSelector.weightedRoundRobin(),
                BackendSelector.leastConnections(), BackendSelector.consistentHash(HashKeys.path()))) {
            assertThat(stateful.forRoute("/a/")).isNotSameAs(stateful.forRoute("/b/")).isNotSameAs(stateful);
        }
        for (BackendSelector stateless : List.of(BackendSelector.random(), BackendSelector.powerOfTwoChoices(),
                BackendSelector.ipHash())) {
            assertThat(stateless.forRoute("/a/")).isSameAs(stateless);
        }
    }

    @Test
    void roundRobinHandsOutCandidatesInExactOrder() {
        BackendSelector selector = BackendSelector.roundRobin().forRoute("/ws/");
        StubSelectionContext context = StubSelectionContext.ofSize(3);

        assertThat(picks(selector, context, 7)).containsExactly(0, 1, 2, 0, 1, 2, 0);
    }

    @Test
    void weightedRoundRobinInterleavesLikeNginx() {
        BackendSelector selector = BackendSelector.weightedRoundRobin().forRoute("/ws/");
        StubSelectionContext context = StubSelectionContext.weighted(5, 1, 1);

        // nginx's smooth weighted round robin: a a b a c a a, then again.
        assertThat(picks(selector, context, 14)).containsExactly(0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0);
    }

    @Test
    void weightedRoundRobinKeepsExactRatiosAndIsPlainRoundRobinWithEqualWeights() {
        BackendSelector weighted = BackendSelector.weightedRoundRobin().forRoute("/ws/");
        StubSelectionContext context = StubSelectionContext.weighted(3, 2, 1);
        int[] counts = new int[3];
        for (int pick : picks(weighted, context, 6000)) {
            counts[pick]++;
        }
        assertThat(counts).containsExactly(3000, 2000, 1000);
        // No backend gets more than its weight in a row.
        assertThat(picks(weighted, context, 6)).containsExactly(0, 1, 0, 2, 1, 0);

        BackendSelector equal = BackendSelector.weightedRoundRobin().forRoute("/ws/");
        assertThat(picks(equal, StubSelectionContext.ofSize(3), 6)).containsExactly(0, 1, 2, 0, 1, 2);
    }

    @Test
    void weightedRoundRobinSkipsADownBackendAndTakesItBackInTurn() {
        BackendSelector selector = BackendSelector.weightedRoundRobin().forRoute("/ws/");
        StubSelectionContext context = StubSelectionContext.weighted(2, 1);
        assertThat(picks(selector, context, 3)).containsExactly(0, 1, 0);
        context.status(0).state = BackendStatus.State.DOWN;
        assertThat(picks(selector, context, 3)).containsExactly(1, 1, 1);
        context.status(0).state = BackendStatus.State.UP;
        int[] counts = new int[2];
        for (int pick : picks(selector, context, 300)) {
            counts[pick]++;
        }
        assertThat(counts).containsExactly(200, 100);
    }

    @Test
    void randomFollowsTheWeights() {
        BackendSelector selector = BackendSelector.random();
        StubSelectionContext context = StubSelectionContext.weighted(1, 3);
        int[] counts = new int[2];
        for (int pick : picks(selector, context, 40_000)) {
            counts[pick]++;
        }
        // Expected 10,000 / 30,000; the bound is over 10 standard deviations.
        assertThat(counts[0]).isBetween(9_000, 11_000);
        assertThat(counts[1]).isBetween(29_000, 31_000);
    }

    @Test
    void powerOfTwoChoicesTakesTheLessLoadedOfTwo() {
        BackendSelector selector = BackendSelector.powerOfTwoChoices();

        StubSelectionContext two = StubSelectionContext.ofSize(2).active(5, 2);
        assertThat(picks(selector, two, 200)).containsOnly(1);

        // Weight-aware: 6 sessions on weight 3 is a lighter load than 4 on weight 1.
        StubSelectionContext weighted = StubSelectionContext.weighted(1, 3).active(4, 6);
        assertThat(picks(selector, weighted, 200)).containsOnly(1);

        // Of three, the most loaded never wins a draw; the least loaded wins every draw it is in (2 of 3).
        StubSelectionContext three = StubSelectionContext.ofSize(3).active(0, 5, 10);
        int[] counts = new int[3];
        for (int pick : picks(selector, three, 30_000)) {
            counts[pick]++;
        }
        assertThat(counts[2]).isZero();
        assertThat(counts[0]).isBetween(19_000, 21_000);
        assertThat(counts[1]).isBetween(9_000, 11_000);
    }

    @Test
    void powerOfTwoChoicesSpreadsEvenLoadsAtRandom() {
        StubSelectionContext context = StubSelectionContext.ofSize(4);
        int[] counts = new int[4];
        for (int pick : picks(BackendSelector.powerOfTwoChoices(), context, 40_000)) {
            counts[pick]++;
        }
        assertThat(IntStream.of(counts)).allSatisfy(count -> assertThat(count).isBetween(9_000, 11_000));
    }

    @Test
    void powerOfTwoChoicesDrawsInProportionToWeightsAmongManyCandidates() {
        // Drawn uniformly, the heavy backend was in 2 draws of 11 and held 18 % of the sessions, not its half: its
        // load per weight can only win a draw it is in. nginx's random two draws each in proportion to weight.
        int[] weights = new int[11];
        java.util.Arrays.fill(weights, 1);
        weights[10] = 10;
        StubSelectionContext context = StubSelectionContext.weighted(weights);
        for (int i = 0; i < 4_000; i++) {
            context.open(BackendSelector.powerOfTwoChoices());
        }
        int[] open = context.activeCounts();
        assertThat(open[10]).as("the weight-10 backend of %s", java.util.Arrays.toString(open)).isBetween(1_900, 2_100);
        for (int light = 0; light < 10; light++) {
            assertThat(open[light]).isBetween(150, 250);
        }
    }

    @Test
    void leastConnectionsRotatesTies() {
        BackendSelector selector = BackendSelector.leastConnections().forRoute("/ws/");
        StubSelectionContext context = StubSelectionContext.ofSize(3);

        // Nothing is counted between the picks (a burst reading the same counts): the ties go round.
        assertThat(picks(selector, context, 6)).containsExactly(0, 1, 2, 0, 1, 2);
        // A less loaded backend wins over any tie; among the least loaded, the turn goes round.
        context.active(4, 4, 1);
        assertThat(picks(selector, context, 5)).containsOnly(2);
        context.active(1, 4, 1);
        assertThat(picks(selector, context, 4)).containsOnly(0, 2).contains(0, 2);
    }

    @Test
    void leastConnectionsGivesEachTiedCandidateItsTurnWhereverTheOthersStand() {
        // Starting the scan one candidate further on each pick gave the first of [0, 0, 1, 1] three picks in four.
        BackendSelector selector = BackendSelector.leastConnections().forRoute("/ws/");
        StubSelectionContext context = StubSelectionContext.ofSize(4);
        context.active(0, 0, 1, 1);

        assertThat(picks(selector, context, 8)).containsExactly(0, 1, 0, 1, 0, 1, 0, 1);
    }

    @Test
    void leastConnectionsFollowsTheFewestActiveSessionsUnderUnevenCloses() {
        BackendSelector selector = BackendSelector.leastConnections().forRoute("/ws/");
        StubSelectionContext context = StubSelectionContext.ofSize(3);
        List<Backend> open = new ArrayList<>();
        for (int i = 0; i < 6; i++) {
            open.add(context.open(selector));
        }
        assertThat(context.activeCounts()).containsExactly(2, 2, 2);

        // Both sessions of b1 and one of b2 end: the next sessions refill b1 first, then b1 and b2 in turn.
        context.close(context.backend(1));
        context.close(context.backend(1));
        context.close(context.backend(2));
        assertThat(context.indexOf(context.open(selector))).isEqualTo(1);
        assertThat(context.activeCounts()).containsExactly(2, 1, 1);
        List<Integer> next = List.of(context.indexOf(context.open(selector)), context.indexOf(context.open(selector)));
        assertThat(next).containsExactlyInAnyOrder(1, 2);
        assertThat(context.activeCounts()).containsExactly(2, 2, 2);
    }

    @Test
    void leastConnectionsAlwaysPicksTheLowestLoadPerWeightInARandomUnevenPattern() {
        BackendSelector selector = BackendSelector.leastConnections().forRoute("/ws/");
        StubSelectionContext context = StubSelectionContext.weighted(1, 2, 3);
        Random random = new Random(42);
        List<Backend> open = new ArrayList<>();
        for (int step = 0; step < 5_000; step++) {
            if (!open.isEmpty() && random.nextInt(100) < 45) {
                // Close an uneven pick of sessions: mostly the oldest ones of the heaviest backend.
                int index = random.nextBoolean() ? 0 : random.nextInt(open.size());
                context.close(open.remove(index));
                continue;
            }
            int[] before = context.activeCounts();
            int picked = context.indexOf(context.open(selector));
            open.add(context.backend(picked));
            for (int other = 0; other < 3; other++) {
                // before[picked] / weight(picked) <= before[other] / weight(other)
                assertThat((long) before[picked] * context.backend(other).weight())
                        .as("step %d: picked b%d with %s", step, picked, java.util.Arrays.toString(before))
                        .isLessThanOrEqualTo((long) before[other] * context.backend(picked).weight());
            }
        }
    }

    @Test
    void leastConnectionsSplitsTiesInProportionToWeights() {
        // Sessions that end before the next one starts leave every count at 0: each pick is a tie, and an even turn
        // gave the weight-3 backend half of them. nginx's least_conn balances tied peers by weight.
        BackendSelector selector = BackendSelector.leastConnections().forRoute("/ws/");
        StubSelectionContext context = StubSelectionContext.weighted(3, 1);

        assertThat(picks(selector, context, 8)).containsExactly(0, 0, 1, 0, 0, 0, 1, 0);
        // Among the tied candidates only: b2 is busier and never picked, b0 and b1 share by weight.
        StubSelectionContext three = StubSelectionContext.weighted(1, 2, 1);
        three.active(0, 0, 5);
        List<Integer> picked = picks(selector.forRoute("/ws/"), three, 6);
        assertThat(picked).doesNotContain(2);
        assertThat(picked.stream().filter(i -> i == 1).count()).isEqualTo(4);
    }

    @Test
    void leastConnectionsKeepsOpenSessionsInProportionToWeights() {
        BackendSelector selector = BackendSelector.leastConnections().forRoute("/ws/");
        StubSelectionContext context = StubSelectionContext.weighted(1, 2, 3);
        for (int i = 0; i < 60; i++) {
            context.open(selector);
        }
        assertThat(context.activeCounts()).containsExactly(10, 20, 30);
    }

    @Test
    void ipHashKeepsAnAddressOnOneBackendWhateverThePortOrFamily() throws Exception {
        StubSelectionContext context = StubSelectionContext.ofSize(5);
        BackendSelector selector = BackendSelector.ipHash();

        Backend first = selector.select(context.client(new InetSocketAddress("10.0.0.1", 40000)));
        for (int port = 40001; port < 40100; port++) {
            assertThat(selector.select(context.client(new InetSocketAddress("10.0.0.1", port)))).isEqualTo(first);
        }
        // A dual-stack socket may report ::ffff:10.0.0.1; Inet6Address.getByAddress keeps that form as IPv6.
        byte[] mapped = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, (byte) 0xFF, (byte) 0xFF, 10, 0, 0, 1};
        InetAddress mappedAddress = Inet6Address.getByAddress(null, mapped, -1);
        assertThat(mappedAddress).isInstanceOf(Inet6Address.class);
        assertThat(selector.select(context.client(new InetSocketAddress(mappedAddress, 1234)))).isEqualTo(first);
        assertThat(selector.select(context.client(new InetSocketAddress("::ffff:10.0.0.1", 1)))).isEqualTo(first);
    }

    @Test
    void ipHashSpreadsAddressesAndMovesOnlyTheClientsOfARemovedBackend() {
        StubSelectionContext all = StubSelectionContext.ofSize(3);
        StubSelectionContext withoutLast = new StubSelectionContext(all.backend(0), all.backend(1));
        BackendSelector selector = BackendSelector.ipHash();
        int[] counts = new int[3];
        for (int i = 0; i < 3_000; i++) {
            InetSocketAddress client = new InetSocketAddress("10.1." + (i / 250) + "." + (i % 250), 5000);
            Backend before = selector.select(all.client(client));
            counts[all.indexOf(before)]++;
            Backend after = selector.select(withoutLast.client(client));
            if (!before.equals(all.backend(2))) {
                assertThat(after).as("client %s stays", client).isEqualTo(before);
            }
        }
        assertThat(IntStream.of(counts)).allSatisfy(count -> assertThat(count).isBetween(850, 1150));
        // IPv6 clients spread too.
        int[] v6 = new int[3];
        for (int i = 0; i < 3_000; i++) {
            v6[all.indexOf(selector.select(all.client(new InetSocketAddress("2001:db8::" + Integer.toHexString(i),
                    5000))))]++;
        }
        assertThat(IntStream.of(v6)).allSatisfy(count -> assertThat(count).isBetween(850, 1150));
    }

    @Test
    void consistentHashKeepsAKeyOnOneBackendAcrossFreshInstances() {
        StubSelectionContext context = StubSelectionContext.ofSize(5);
        int[] counts = new int[5];
        for (int user = 0; user < 1_000; user++) {
            context.header("X-User", "user-" + user);
            Backend one = BackendSelector.consistentHash(HashKeys.header("X-User")).forRoute("/ws/").select(context);
            Backend two = BackendSelector.consistentHash(HashKeys.header("x-user")).forRoute("/ws/").select(context);
            assertThat(two).isEqualTo(one);
            counts[context.indexOf(one)]++;
        }
        assertThat(IntStream.of(counts)).allSatisfy(count -> assertThat(count).isBetween(150, 250));
    }

    @Test
    void consistentHashHandsOutRequestsWithoutAKeyRoundRobin() {
        BackendSelector selector = BackendSelector.consistentHash(HashKeys.cookie("session")).forRoute("/ws/");
        StubSelectionContext context = StubSelectionContext.ofSize(3);
        assertThat(picks(selector, context, 6)).containsExactly(0, 1, 2, 0, 1, 2);
        context.cookie("session", "");
        assertThat(picks(selector, context, 3)).as("an empty key is no key").containsExactly(0, 1, 2);
        context.cookie("session", "abc");
        assertThat(picks(selector, context, 6)).containsOnly(picks(selector, context, 1).get(0));
    }

    @Test
    void consistentHashHandsOutRequestsWithoutAKeyInProportionToWeights() {
        // A client's first session often has no key yet (the backend sets the cookie): nginx hands those out by its
        // weighted round robin. Plain round robin gave a backend of weight 5 a third of them, as to each of weight 1.
        BackendSelector selector = BackendSelector.consistentHash(HashKeys.cookie("session")).forRoute("/ws/");
        StubSelectionContext context = StubSelectionContext.weighted(5, 1, 1);

        assertThat(picks(selector, context, 14)).containsExactly(0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0);
        context.cookie("session", "abc");
        assertThat(picks(selector, context, 3)).as("a key still picks by its hash")
                .containsOnly(picks(selector, context, 1).get(0));
    }

    @Test
    void hashKeysReadTheirPartOfTheRequest() {
        StubSelectionContext context = StubSelectionContext.ofSize(1)
                .header("X-User", "alice").cookie("session", "s1").query("room", "42")
                .uri("http://proxy.test/ws/rooms/42?room=42");
        assertThat(HashKeys.header("x-user").apply(context)).isEqualTo("alice");
        assertThat(HashKeys.cookie("session").apply(context)).isEqualTo("s1");
        assertThat(HashKeys.queryParameter("room").apply(context)).isEqualTo("42");
        assertThat(HashKeys.path().apply(context)).isEqualTo("/ws/rooms/42");
        assertThat(HashKeys.header("X-Missing").apply(context)).isNull();
        assertThat(HashKeys.cookie("missing").apply(context)).isNull();
        assertThat(HashKeys.queryParameter("missing").apply(context)).isNull();
        assertThat(BackendSelector.consistentHash(HashKeys.queryParameter("room")))
                .hasToString("consistentHash(query room)");
        assertThat(HashKeys.cookie("session")).hasToString("cookie session");
        assertThat(HashKeys.path()).hasToString("path");
    }

    @Test
    void validatesFactoryArguments() {
        assertThatThrownBy(() -> BackendSelector.consistentHash(null)).isInstanceOf(NullPointerException.class)
                .hasMessage("key");
        assertThatThrownBy(() -> HashKeys.header(null)).isInstanceOf(NullPointerException.class);
        assertThatThrownBy(() -> HashKeys.header("")).hasMessage("header: '' (expected: a name)");
        assertThatThrownBy(() -> HashKeys.cookie("")).hasMessage("cookie: '' (expected: a name)");
        assertThatThrownBy(() -> HashKeys.queryParameter(""))
                .hasMessage("queryParameter: '' (expected: a name)");
    }

    @Test
    void refusesHeaderAndCookieNamesNoRequestCanCarry() {
        // Accepted, such a name never matched: every pick fell back to round robin without a word.
        for (String name : List.of("X-User:", "X User", " X-User", "X-User\t", "X-User\r\n", "X/User", "X(User)",
                "X-Üser", "\"X-User\"")) {
            assertThatThrownBy(() -> HashKeys.header(name)).as(name).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageStartingWith("header: '" + name + "' (expected: a header name, an RFC 9110 token");
        }
        for (String name : List.of("session=", "my session", "session;", "a,b", "sess\u0000", "[session]",
                "s\u00e9ssion")) {
            assertThatThrownBy(() -> HashKeys.cookie(name)).as(name).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageStartingWith("cookie: '" + name + "' (expected: a cookie name, an RFC 6265 token");
        }
        // Every token character is taken.
        String token = "!#$%&'*+-.^_`|~09AZaz";
        assertThat(HashKeys.header(token)).hasToString("header " + token);
        assertThat(HashKeys.cookie(token)).hasToString("cookie " + token);
    }

    /** The indexes of {@code count} successive picks, with nothing counted in between. */
    private static List<Integer> picks(BackendSelector selector, StubSelectionContext context, int count) {
        List<Integer> picks = new ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            picks.add(context.indexOf(selector.select(context)));
        }
        return picks;
    }
}
