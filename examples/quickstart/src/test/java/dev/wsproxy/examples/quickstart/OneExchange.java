package dev.wsproxy.examples.quickstart;

import java.net.URI;
import java.net.http.WebSocket;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/** The one exchange the quick start's tests make through the proxy: connect, send a text, read the answer, close. */
final class OneExchange {

    private OneExchange() {
    }

    /**
     * Opens a WebSocket to {@code uri} with {@code builder} (its headers set by the caller), sends {@code text}, and
     * returns the first text that comes back ({@code null} if none within 10 s), after a normal close.
     */
    static String ask(WebSocket.Builder builder, URI uri, String text) throws Exception {
        BlockingQueue<String> received = new LinkedBlockingQueue<>();
        WebSocket socket = builder.buildAsync(uri, new WebSocket.Listener() {
            @Override
            public CompletionStage<?> onText(WebSocket webSocket, CharSequence data, boolean last) {
                received.add(data.toString());
                webSocket.request(1);
                return null;
            }
        }).get(10, TimeUnit.SECONDS);
        socket.sendText(text, true);
        String answer = received.poll(10, TimeUnit.SECONDS);
        socket.sendClose(WebSocket.NORMAL_CLOSURE, "").get(10, TimeUnit.SECONDS);
        return answer;
    }
}
