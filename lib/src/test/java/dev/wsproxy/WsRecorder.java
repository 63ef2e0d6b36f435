package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.eclipse.jetty.websocket.api.Callback;
import org.eclipse.jetty.websocket.api.Session;

/**
 * A Jetty client endpoint that records every event in a queue, in order (OkHttp's {@code WebSocketRecorder}).
 * Public: Jetty binds endpoint methods with method handles.
 */
public final class WsRecorder implements Session.Listener.AutoDemanding {

    record Text(String text) {
    }

    record Binary(byte[] bytes) {
    }

    record Pong(String payload) {
    }

    record Closed(int code, String reason) {
    }

    record Error(Throwable cause) {
    }

    final BlockingQueue<Object> events = new LinkedBlockingQueue<>();
    volatile Session session;

    @Override
    public void onWebSocketOpen(Session session) {
        this.session = session;
    }

    @Override
    public void onWebSocketText(String message) {
        events.add(new Text(message));
    }

    @Override
    public void onWebSocketBinary(ByteBuffer payload, Callback callback) {
        byte[] bytes = new byte[payload.remaining()];
        payload.get(bytes);
        callback.succeed();
        events.add(new Binary(bytes));
    }

    @Override
    public void onWebSocketPong(ByteBuffer payload) {
        events.add(new Pong(StandardCharsets.UTF_8.decode(payload).toString()));
    }

    @Override
    public void onWebSocketError(Throwable cause) {
        events.add(new Error(cause));
    }

    @Override
    public void onWebSocketClose(int statusCode, String reason, Callback callback) {
        events.add(new Closed(statusCode, reason == null ? "" : reason));
        callback.succeed();
    }

    Object next() throws InterruptedException {
        Object event = events.poll(10, TimeUnit.SECONDS);
        if (event == null) {
            throw new AssertionError("no event within 10 s");
        }
        return event;
    }

    <T> T next(Class<T> type) throws InterruptedException {
        Object event = next();
        assertThat(event).isInstanceOf(type);
        return type.cast(event);
    }

    String nextText() throws InterruptedException {
        return next(Text.class).text();
    }

    byte[] nextBinary() throws InterruptedException {
        return next(Binary.class).bytes();
    }

    /** Skips errors (Jetty reports a lost connection as an error before the close) and returns the close. */
    Closed nextClose() throws InterruptedException {
        Object event;
        do {
            event = next();
        } while (event instanceof Error);
        assertThat(event).isInstanceOf(Closed.class);
        return (Closed) event;
    }

    void sendText(String text) {
        session.sendText(text, Callback.NOOP);
    }
}
