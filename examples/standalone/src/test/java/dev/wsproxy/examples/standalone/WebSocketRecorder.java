package dev.wsproxy.examples.standalone;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.http.WebSocket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/** Records what a JDK WebSocket receives, in order: text messages in a queue, the close code in a future. */
final class WebSocketRecorder implements WebSocket.Listener {

    private static final Duration TIMEOUT = Duration.ofSeconds(5);

    private final BlockingQueue<String> texts = new LinkedBlockingQueue<>();
    private final CompletableFuture<Integer> closeCode = new CompletableFuture<>();
    private final StringBuilder partial = new StringBuilder();
    private final boolean reads;

    WebSocketRecorder() {
        this(true);
    }

    private WebSocketRecorder(boolean reads) {
        this.reads = reads;
    }

    /**
     * Returns a recorder that never asks for a message: the JDK client then reads nothing from its socket, so that
     * once the peer has filled the buffers between them, it cannot be written to, not even a close frame.
     */
    static WebSocketRecorder notReading() {
        return new WebSocketRecorder(false);
    }

    @Override
    public void onOpen(WebSocket webSocket) {
        if (reads) {
            webSocket.request(1);
        }
    }

    @Override
    public CompletionStage<?> onText(WebSocket webSocket, CharSequence data, boolean last) {
        partial.append(data);
        if (last) {
            texts.add(partial.toString());
            partial.setLength(0);
        }
        webSocket.request(1);
        return null;
    }

    @Override
    public CompletionStage<?> onClose(WebSocket webSocket, int statusCode, String reason) {
        closeCode.complete(statusCode);
        return null;
    }

    @Override
    public void onError(WebSocket webSocket, Throwable error) {
        closeCode.completeExceptionally(error);
    }

    /** Returns the next text message, failing if none arrives in time. */
    String nextText() throws InterruptedException {
        String text = texts.poll(TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        assertThat(text).as("a text message within %s", TIMEOUT).isNotNull();
        return text;
    }

    /** Returns the messages received and not taken yet. */
    List<String> texts() {
        List<String> rest = new ArrayList<>();
        texts.drainTo(rest);
        return rest;
    }

    /** Returns the close code the peer sent, failing if the connection does not close in time. */
    int awaitClose() {
        assertThat(closeCode).succeedsWithin(TIMEOUT);
        return closeCode.join();
    }
}
