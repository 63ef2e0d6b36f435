package dev.wsproxy.benchmark.jmh;

import java.net.InetSocketAddress;
import java.net.URI;
import java.util.List;
import java.util.Map;
import java.util.Set;

import dev.wsproxy.Backend;
import dev.wsproxy.BackendStatus;
import dev.wsproxy.SelectionContext;

/**
 * A handshake as a selector or validator sees it, without a network: fixed headers, a fixed client address, every
 * backend up and idle.
 */
final class StubRequest implements SelectionContext {

    private static final InetSocketAddress CLIENT = new InetSocketAddress("127.0.0.1", 50_000);

    private final List<Backend> backends;
    private final List<BackendStatus> candidates;
    private final Map<String, String> headers;

    StubRequest(List<Backend> backends, Map<String, String> headers) {
        this.backends = backends;
        this.candidates = backends.stream().<BackendStatus>map(Up::new).toList();
        this.headers = headers;
    }

    /** A backend that is up, with no sessions and no failures. */
    private record Up(Backend backend) implements BackendStatus {

        @Override
        public State state() {
            return State.UP;
        }

        @Override
        public int activeSessions() {
            return 0;
        }

        @Override
        public int pendingHandshakes() {
            return 0;
        }

        @Override
        public long totalSessions() {
            return 0;
        }

        @Override
        public int recentFailures() {
            return 0;
        }
    }

    @Override
    public List<Backend> backends() {
        return backends;
    }

    @Override
    public List<BackendStatus> candidates() {
        return candidates;
    }

    @Override
    public String route() {
        return "/ws/";
    }

    @Override
    public InetSocketAddress clientAddress() {
        return CLIENT;
    }

    @Override
    public URI uri() {
        return URI.create("http://app.example.com/ws/chat");
    }

    @Override
    public boolean secure() {
        return false;
    }

    @Override
    public String header(String name) {
        return headers.get(name.toLowerCase(java.util.Locale.ROOT));
    }

    @Override
    public List<String> headers(String name) {
        String value = header(name);
        return value == null ? List.of() : List.of(value);
    }

    @Override
    public Set<String> headerNames() {
        return headers.keySet();
    }

    @Override
    public String cookie(String name) {
        return null;
    }

    @Override
    public String queryParameter(String name) {
        return null;
    }

    @Override
    public List<String> queryParameters(String name) {
        return List.of();
    }

    @Override
    public List<String> subprotocols() {
        return List.of();
    }
}
