package dev.wsproxy;

import static org.awaitility.Awaitility.await;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/** A {@link ProxyListener} that records every event in order, for assertions on what the proxy reported. */
final class RecordingListener implements ProxyListener {

    /** {@code onHandshakeRejected}. */
    record Rejected(String route, String pathQuery, int status, String reason) {
    }

    /** {@code onBackendConnectFailed}. */
    record ConnectFailed(Backend backend, Throwable cause) {
    }

    /** {@code onSessionOpened}. */
    record Opened(String sessionId) {
    }

    /** {@code onSessionClosed}. */
    record Closed(String sessionId) {
    }

    final List<Object> events = new CopyOnWriteArrayList<>();

    @Override
    public void onHandshakeRejected(HandshakeRequest request, int status, String reason) {
        java.net.URI uri = request.uri();
        String pathQuery = uri.getRawPath() + (uri.getRawQuery() == null ? "" : "?" + uri.getRawQuery());
        events.add(new Rejected(request.route(), pathQuery, status, reason));
    }

    @Override
    public void onBackendConnectFailed(HandshakeRequest request, Backend backend, Throwable cause) {
        events.add(new ConnectFailed(backend, cause));
    }

    @Override
    public void onSessionOpened(ProxySession session) {
        events.add(new Opened(session.id()));
    }

    @Override
    public void onSessionClosed(ProxySession session, SessionClose close) {
        events.add(new Closed(session.id()));
    }

    /** Every event recorded so far, of the given type. */
    <T> List<T> all(Class<T> type) {
        List<T> matching = new ArrayList<>();
        for (Object event : events) {
            if (type.isInstance(event)) {
                matching.add(type.cast(event));
            }
        }
        return matching;
    }

    /** Waits until at least one event of the given type was recorded, and returns the first. */
    <T> T first(Class<T> type) {
        await().atMost(Duration.ofSeconds(10)).until(() -> !all(type).isEmpty());
        return all(type).get(0);
    }
}
