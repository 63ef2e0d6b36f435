package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.util.ArrayList;
import java.util.List;
import java.util.function.UnaryOperator;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import dev.wsproxy.RawHttp.Request;

/**
 * Who the client is decides its backend under {@link BackendSelector#ipHash()} and the limits it counts against
 * (matrix row H9). The trusted proxies are {@code 127.0.0.2/32} (the balancer in front) and {@code 10.0.0.0/8} (hops
 * inside); clients are sockets bound to loopback addresses (Linux accepts all of 127/8).
 *
 * <p>From the trusted peer, {@code X-Forwarded-For} names the client: the right-most hop that is not a trusted proxy.
 * Its sessions are hashed by that hop, and counted against its per-address session limit and handshake rate,
 * whatever the client put to the left of it (anything there is the client's own claim). From a peer that is not
 * trusted, the header is dropped and replaced by the peer's address: the same spoofed chain from two such peers
 * neither sticks their sessions together nor counts them together, and a new spoofed chain does not get a peer past
 * its own limit.
 *
 * <p>Where each address lands is not hard-coded: the test asks {@code ipHash()} itself over the same three backends
 * which backend each address hashes to, and picks addresses that land on different backends, so that hashing by the
 * wrong address (the peer, the left-most hop, the last hop) is seen in every run. {@link TrustAndLimitsTest} checks the
 * forwarded headers and one per-address limit behind a trusted proxy; {@link StickyBalancingTest} checks
 * {@code ipHash()} for the peer's own address.
 */
class TrustedProxyHashTest {

    private static final String TRUSTED_PEER = "127.0.0.2";
    /** A hop inside the trusted network, right of the client in every chain. */
    private static final String INNER_HOP = "10.1.2.3";

    private final List<TestBackend> backends = new ArrayList<>();
    private final List<RawHttp> open = new ArrayList<>();
    private WebSocketProxy proxy;

    @BeforeEach
    void startBackends() throws Exception {
        for (String id : List.of("a", "b", "c")) {
            backends.add(new TestBackend(id));
        }
    }

    @AfterEach
    void stop() throws Exception {
        for (RawHttp client : open) {
            client.close();
        }
        Clients.tearDown(proxy, null, backends.toArray(AutoCloseable[]::new));
    }

    private void start(UnaryOperator<ProxyBuilder> settings) throws Exception {
        proxy = settings.apply(ProxyBuilder.create().listen("127.0.0.1", 0)
                .route("/ws/", backends.stream().map(TestBackend::backend).toArray(Backend[]::new))
                .trustedProxies(TRUSTED_PEER + "/32", "10.0.0.0/8")).build();
        proxy.start();
    }

    // ---- ipHash ----

    @Test
    void hashesAClientBehindATrustedProxyByTheRightMostUntrustedHop() throws Exception {
        start(b -> b.backendSelector(BackendSelector.ipHash()));
        List<String> hops = oneAddressPerBackend("198.51.100.");

        for (int k = 0; k < 3; k++) {
            String hop = hops.get(k);
            // Left of the client's hop: whatever the client claims, here addresses that hash elsewhere.
            for (String claim : List.of(hops.get((k + 1) % 3), hops.get((k + 2) % 3))) {
                String chain = claim + ", " + hop + ", " + INNER_HOP;
                Session session = open(TRUSTED_PEER, chain);
                assertThat(session.backend).as("the backend of %s behind %s", chain, TRUSTED_PEER)
                        .isEqualTo(idOf(k));
                assertThat(session.seen.header("X-Real-IP")).isEqualTo(hop);
                assertThat(session.seen.header("X-Forwarded-For")).isEqualTo(chain + ", " + TRUSTED_PEER);
            }
        }
        assertThat(proxy.sessions()).extracting(s -> s.clientAddress().getAddress().getHostAddress())
                .containsExactlyInAnyOrder(hops.get(0), hops.get(0), hops.get(1), hops.get(1), hops.get(2),
                        hops.get(2));
    }

    @Test
    void readsAHopThatCarriesAPortAsItsAddress() throws Exception {
        // Azure Application Gateway, among others, sends "203.0.113.7:51234" and "[2001:db8::1]:443". Read as
        // garbage, such a hop made every client the balancer itself: one backend for all, one per-address count.
        // The IPv6 clients share 2001:db8::/64: counted one address each, as the IPv4 ones are.
        start(b -> b.backendSelector(BackendSelector.ipHash()).maxConnectionsPerIp(1).perIpIpv6Prefix(128));
        List<String> v4 = oneAddressPerBackend("198.51.100.");
        List<String> v6 = oneAddressPerBackend("2001:db8::");
        for (int k = 0; k < 3; k++) {
            String chain = v4.get(k) + ":" + (51234 + k) + ", " + INNER_HOP + ":443";
            Session session = open(TRUSTED_PEER, chain);
            assertThat(session.backend).as("the backend of %s behind %s", chain, TRUSTED_PEER).isEqualTo(idOf(k));
            assertThat(session.seen.header("X-Real-IP")).isEqualTo(v4.get(k));
            assertThat(session.seen.header("X-Forwarded-For")).as("the chain goes on as sent")
                    .isEqualTo(chain + ", " + TRUSTED_PEER);

            chain = "[" + v6.get(k) + "]:443, [::ffff:" + INNER_HOP + "]";
            session = open(TRUSTED_PEER, chain);
            assertThat(session.backend).as("the backend of %s behind %s", chain, TRUSTED_PEER).isEqualTo(idOf(k));
            assertThat(session.seen.header("X-Real-IP")).isEqualTo(v6.get(k));
        }
        assertRefused(TRUSTED_PEER, v4.get(0) + ":40000", "the same client from another port");
        assertRefused(TRUSTED_PEER, v6.get(0), "the same client without brackets and port");
    }

    @Test
    void hashesAnUntrustedPeerByItsOwnAddressWhateverItsForwardedFor() throws Exception {
        start(b -> b.backendSelector(BackendSelector.ipHash()));
        List<String> hops = oneAddressPerBackend("198.51.100.");
        List<String> peers = oneAddressPerBackend("127.0.0.");

        // One untrusted peer claims three clients that hash to three backends: all its sessions stay on its own.
        String peer = peers.get(0);
        for (String hop : hops) {
            Session session = open(peer, hop + ", " + INNER_HOP);
            assertThat(session.backend).as("the backend of %s claiming %s", peer, hop).isEqualTo(idOf(0));
            assertThat(session.seen.header("X-Forwarded-For")).as("the rewritten chain").isEqualTo(peer);
            assertThat(session.seen.header("X-Real-IP")).isEqualTo(peer);
        }
        // The same claim from two other untrusted peers: their sessions do not stick together. The claimed client
        // hashes elsewhere than the trusted peer itself.
        int claimed = (backendOf(TRUSTED_PEER) + 1) % 3;
        String claim = hops.get(claimed) + ", " + INNER_HOP;
        assertThat(open(peers.get(1), claim).backend).isEqualTo(idOf(1));
        assertThat(open(peers.get(2), claim).backend).isEqualTo(idOf(2));
        // The same claim from the trusted peer is believed: its sessions stick to the client's backend.
        assertThat(open(TRUSTED_PEER, claim).backend).isEqualTo(idOf(claimed));
        assertThat(open(TRUSTED_PEER, claim).backend).isEqualTo(idOf(claimed));
    }

    // ---- per-address limits ----

    @Test
    void countsSessionsAgainstTheRightMostUntrustedHopBehindATrustedProxyAndAgainstThePeerOtherwise()
            throws Exception {
        start(b -> b.maxConnectionsPerIp(1));
        String client = "198.51.100.7";

        assertThat(open("127.0.0.1", client).seen.header("X-Forwarded-For")).isEqualTo("127.0.0.1");
        assertThat(open("127.0.0.3", client).seen.header("X-Forwarded-For"))
                .as("the same claim from another untrusted peer: not counted together").isEqualTo("127.0.0.3");
        assertRefused("127.0.0.1", "198.51.100.8", "a new claim from a peer at its limit");

        assertThat(open(TRUSTED_PEER, client + ", " + INNER_HOP).seen.header("X-Real-IP"))
                .as("the client the untrusted peers claimed has its slot still").isEqualTo(client);
        assertRefused(TRUSTED_PEER, "203.0.113.9, " + client, "the same client behind the trusted proxy, with a claim"
                + " of its own on the left");
        assertThat(open(TRUSTED_PEER, "198.51.100.8").seen.header("X-Real-IP"))
                .as("another client behind the trusted proxy").isEqualTo("198.51.100.8");

        assertThat(proxy.sessions()).extracting(s -> s.clientAddress().getAddress().getHostAddress())
                .containsExactlyInAnyOrder("127.0.0.1", "127.0.0.3", client, "198.51.100.8");
    }

    @Test
    void ratesHandshakesOfTheRightMostUntrustedHopBehindATrustedProxyAndOfThePeerOtherwise() throws Exception {
        start(b -> b.handshakeRatePerIp(1));
        String client = "198.51.100.7";

        // Each refusal follows the handshake it is counted with at once: the bucket gets a token back after 1 s.
        open(TRUSTED_PEER, client + ", " + INNER_HOP);
        assertRefused(TRUSTED_PEER, "203.0.113.9, " + client, "the same client behind the trusted proxy");
        open(TRUSTED_PEER, "198.51.100.8");

        open("127.0.0.1", client);
        assertRefused("127.0.0.1", "198.51.100.9", "a new claim from a peer over its rate");
        open("127.0.0.3", client);
    }

    // ---- helpers ----

    /** A session through the proxy: the id of the backend that serves it, and its upgrade request as that backend saw it. */
    private record Session(String backend, TestBackend.Upgrade seen) {
    }

    /**
     * Opens a session from a socket bound to {@code from}, with {@code X-Forwarded-For: forwardedFor}, asks which
     * backend serves it, and keeps it open until the end of the test.
     */
    private Session open(String from, String forwardedFor) throws Exception {
        RawHttp client = connectFrom(from);
        RawHttp.Response response = client.exchange(Request.upgrade("/ws/x", RawHttp.host(proxy))
                .add("X-Forwarded-For", forwardedFor));
        assertThat(response.status()).as("%s from %s with X-Forwarded-For: %s", response, from, forwardedFor)
                .isEqualTo(101);
        client.sendText("whoami");
        String id = client.readFrame().text();
        TestBackend backend = backends.stream().filter(candidate -> candidate.id.equals(id)).findFirst()
                .orElseThrow();
        return new Session(id, backend.nextUpgrade());
    }

    /** A handshake refused with 429 before any backend heard of it. */
    private void assertRefused(String from, String forwardedFor, String description) throws Exception {
        RawHttp client = connectFrom(from);
        RawHttp.Response response = client.exchange(Request.upgrade("/ws/x", RawHttp.host(proxy))
                .add("X-Forwarded-For", forwardedFor));
        assertThat(response.status()).as("%s: %s", description, response).isEqualTo(429);
        assertThat(response.header("Retry-After")).isEqualTo("1");
        for (TestBackend backend : backends) {
            assertThat(backend.upgrades).as("upgrades at backend %s", backend.id).isEmpty();
        }
    }

    private RawHttp connectFrom(String from) throws IOException {
        Socket socket = new Socket();
        socket.bind(new InetSocketAddress(from, 0));
        socket.connect(new InetSocketAddress("127.0.0.1", proxy.uri().getPort()), 5_000);
        RawHttp client = RawHttp.over(socket);
        open.add(client);
        return client;
    }

    private String idOf(int index) {
        return backends.get(index).id;
    }

    /**
     * Addresses {@code prefix + n} (n from 1, never the trusted peer), one for each backend in order: the first that
     * {@code ipHash()} sends to backend a, to b, to c.
     */
    private List<String> oneAddressPerBackend(String prefix) throws Exception {
        String[] found = new String[backends.size()];
        int missing = found.length;
        for (int n = 1; n < 255 && missing > 0; n++) {
            String address = prefix + n;
            int index = backendOf(address);
            if (!address.equals(TRUSTED_PEER) && found[index] == null) {
                found[index] = address;
                missing--;
            }
        }
        assertThat(found).as("an address for each backend under %s", prefix).doesNotContainNull();
        return List.of(found);
    }

    /** The index of the backend {@code ipHash()} picks for a client at {@code address}, over the proxy's backends. */
    private int backendOf(String address) throws Exception {
        Backend[] all = backends.stream().map(TestBackend::backend).toArray(Backend[]::new);
        StubSelectionContext context = new StubSelectionContext(all)
                .client(new InetSocketAddress(InetAddress.getByName(address), 40_000));
        return context.indexOf(BackendSelector.ipHash().select(context));
    }
}
