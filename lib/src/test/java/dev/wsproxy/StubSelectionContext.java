package dev.wsproxy;

import java.net.InetSocketAddress;
import java.net.URI;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;

import org.jspecify.annotations.Nullable;

/**
 * A hand-written {@link SelectionContext} for selector unit tests: a fixed request and backends whose active session
 * counts the test sets, or that {@link #open(Backend)} and {@link #close(Backend)} move like the proxy would.
 * Thread-safe for concurrent {@link #select}, {@link #open} and {@link #close}; the setters are for one thread.
 */
final class StubSelectionContext implements SelectionContext {

    /** A backend's live state, with a settable count. */
    static final class Status implements BackendStatus {
        private final Backend backend;
        final AtomicInteger active = new AtomicInteger();
        volatile State state = State.UP;

        Status(Backend backend) {
            this.backend = backend;
        }

        @Override
        public Backend backend() {
            return backend;
        }

        @Override
        public State state() {
            return state;
        }

        @Override
        public int activeSessions() {
            return active.get();
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

        @Override
        public String toString() {
            return backend + " active=" + active;
        }
    }

    private final List<Status> statuses = new ArrayList<>();
    private final Map<String, String> headers = new HashMap<>();
    private final Map<String, String> cookies = new HashMap<>();
    private final Map<String, String> query = new HashMap<>();
    private InetSocketAddress clientAddress = new InetSocketAddress("127.0.0.1", 50000);
    private URI uri = URI.create("http://proxy.test/ws/x");

    StubSelectionContext(Backend... backends) {
        for (Backend backend : backends) {
            statuses.add(new Status(backend));
        }
    }

    /** Backends {@code ws://b0:1} ... with the given weights. */
    static StubSelectionContext weighted(int... weights) {
        Backend[] backends = new Backend[weights.length];
        for (int i = 0; i < weights.length; i++) {
            backends[i] = Backend.of("ws://b" + i + ":1").withWeight(weights[i]);
        }
        return new StubSelectionContext(backends);
    }

    /** {@code count} backends of weight 1 named {@code ws://b0:1} ... */
    static StubSelectionContext ofSize(int count) {
        int[] weights = new int[count];
        java.util.Arrays.fill(weights, 1);
        return weighted(weights);
    }

    Status status(int index) {
        return statuses.get(index);
    }

    Backend backend(int index) {
        return statuses.get(index).backend();
    }

    int indexOf(@Nullable Backend backend) {
        for (int i = 0; i < statuses.size(); i++) {
            if (statuses.get(i).backend().equals(backend)) {
                return i;
            }
        }
        throw new AssertionError("not a backend of this context: " + backend);
    }

    StubSelectionContext active(int... counts) {
        for (int i = 0; i < counts.length; i++) {
            statuses.get(i).active.set(counts[i]);
        }
        return this;
    }

    StubSelectionContext header(String name, String value) {
        headers.put(name.toLowerCase(java.util.Locale.ROOT), value);
        return this;
    }

    StubSelectionContext cookie(String name, String value) {
        cookies.put(name, value);
        return this;
    }

    StubSelectionContext query(String name, String value) {
        query.put(name, value);
        return this;
    }

    StubSelectionContext client(InetSocketAddress address) {
        this.clientAddress = address;
        return this;
    }

    StubSelectionContext uri(String uri) {
        this.uri = URI.create(uri);
        return this;
    }

    /** Asks {@code selector} for a backend and counts a session on it, as the proxy does from the handshake on. */
    Backend open(BackendSelector selector) {
        Backend backend = selector.select(this);
        if (backend == null) {
            throw new AssertionError("no backend");
        }
        statuses.get(indexOf(backend)).active.incrementAndGet();
        return backend;
    }

    void close(Backend backend) {
        statuses.get(indexOf(backend)).active.decrementAndGet();
    }

    int[] activeCounts() {
        return statuses.stream().mapToInt(Status::activeSessions).toArray();
    }

    @Override
    public List<Backend> backends() {
        return statuses.stream().map(Status::backend).toList();
    }

    @Override
    public List<BackendStatus> candidates() {
        List<BackendStatus> primaries = new ArrayList<>();
        List<BackendStatus> backups = new ArrayList<>();
        for (Status status : statuses) {
            if (status.state == BackendStatus.State.UP) {
                (status.backend().isBackup() ? backups : primaries).add(status);
            }
        }
        return List.copyOf(primaries.isEmpty() ? backups : primaries);
    }

    @Override
    public String route() {
        return "/ws/";
    }

    @Override
    public InetSocketAddress clientAddress() {
        return clientAddress;
    }

    @Override
    public URI uri() {
        return uri;
    }

    @Override
    public boolean secure() {
        return false;
    }

    @Override
    public @Nullable String header(String name) {
        return headers.get(name.toLowerCase(java.util.Locale.ROOT));
    }

    @Override
    public List<String> headers(String name) {
        String value = header(name);
        return value == null ? List.of() : List.of(value);
    }

    @Override
    public Set<String> headerNames() {
        return new LinkedHashSet<>(headers.keySet());
    }

    @Override
    public @Nullable String cookie(String name) {
        return cookies.get(name);
    }

    @Override
    public @Nullable String queryParameter(String name) {
        return query.get(name);
    }

    @Override
    public List<String> queryParameters(String name) {
        String value = queryParameter(name);
        return value == null ? List.of() : List.of(value);
    }

    @Override
    public List<String> subprotocols() {
        return List.of();
    }
}
