package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/** A {@link ProxyListener} that queues the sessions opened and the closes reported, for tests to wait on. */
final class SessionEvents implements ProxyListener {

    final BlockingQueue<ProxySession> opened = new LinkedBlockingQueue<>();
    final BlockingQueue<SessionClose> closes = new LinkedBlockingQueue<>();

    /** The next close reported; fails unless one comes within 10 s. */
    SessionClose nextClose() throws InterruptedException {
        SessionClose close = closes.poll(10, TimeUnit.SECONDS);
        assertThat(close).as("listener saw the session close").isNotNull();
        return close;
    }

    @Override
    public void onSessionOpened(ProxySession session) {
        opened.add(session);
    }

    @Override
    public void onSessionClosed(ProxySession session, SessionClose close) {
        closes.add(close);
    }
}
