package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.eclipse.jetty.http.HostPortHttpField;
import org.eclipse.jetty.http.HttpFields;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.http.HttpScheme;
import org.eclipse.jetty.http.MetaData;
import org.eclipse.jetty.http2.ErrorCode;
import org.eclipse.jetty.http2.HTTP2Session;
import org.eclipse.jetty.http2.api.Session;
import org.eclipse.jetty.http2.api.Stream;
import org.eclipse.jetty.http2.client.HTTP2Client;
import org.eclipse.jetty.http2.frames.DataFrame;
import org.eclipse.jetty.http2.frames.HeadersFrame;
import org.eclipse.jetty.http2.frames.ResetFrame;
import org.eclipse.jetty.util.Callback;

/**
 * A WebSocket over HTTP/2 (RFC 8441) on Jetty's low-level h2c client, writing and reading frames as
 * {@link RawWebSocket} does on a socket: an extended {@code CONNECT} on a stream, then masked frames in DATA frames.
 * Jetty's own WebSocket client over HTTP/2 is not used: in 12.1.12 its HTTP receiver reads DATA that arrives right
 * after the {@code 200} as response content, and a frame the server sends at once (an echo, a close) is lost.
 *
 * <p>A stream that is not {@code reading} takes nothing after the response head until {@link #startReading()}: its
 * flow-control window, once full, holds the server back.
 */
final class RawH2WebSocket implements Stream.Listener {

    /** End of the stream, in {@link #chunks}. */
    private static final byte[] END = new byte[0];
    /** The stream was reset, in {@link #chunks}. */
    private static final byte[] RESET = new byte[0];

    final CompletableFuture<MetaData.Response> response = new CompletableFuture<>();
    private final BlockingQueue<byte[]> chunks = new LinkedBlockingQueue<>();
    private final InputStream in = new ChunkStream();
    private volatile boolean reading;
    volatile Stream stream;

    private RawH2WebSocket(boolean reading) {
        this.reading = reading;
    }

    /** A new h2c session to {@code 127.0.0.1:port}; extended CONNECTs go out without waiting for its settings. */
    static Session session(HTTP2Client client, int port) throws Exception {
        return client.connect(new InetSocketAddress("127.0.0.1", port), new Session.Listener() {
        }).get(10, TimeUnit.SECONDS);
    }

    /** Opens a WebSocket on a new session, with {@code Sec-WebSocket-Version: 13} and {@code headers}. */
    static RawH2WebSocket open(HTTP2Client client, int port, String path, HttpFields headers) throws Exception {
        return open(session(client, port), port, path, headers, "13", true);
    }

    /** Opens a WebSocket on {@code session}; {@code version} {@code null} sends no version. */
    static RawH2WebSocket open(Session session, int port, String path, HttpFields headers, String version,
            boolean reading) throws Exception {
        HttpFields.Mutable fields = HttpFields.build();
        if (version != null) {
            fields.put(HttpHeader.SEC_WEBSOCKET_VERSION, version);
        }
        fields.add(headers);
        MetaData.ConnectRequest connect = new MetaData.ConnectRequest(HttpScheme.HTTP,
                new HostPortHttpField("127.0.0.1:" + port), path, fields, "websocket");
        RawH2WebSocket ws = new RawH2WebSocket(reading);
        ws.stream = session.newStream(new HeadersFrame(connect, null, false), ws).get(10, TimeUnit.SECONDS);
        return ws;
    }

    /** The response head; fails after 10 s. */
    MetaData.Response head() throws Exception {
        return response.get(10, TimeUnit.SECONDS);
    }

    /** The response status; fails after 10 s. */
    int status() throws Exception {
        return head().getStatus();
    }

    /** Fails unless the proxy accepted: {@code 200}, the RFC 8441 answer. */
    RawH2WebSocket accepted() throws Exception {
        assertThat(status()).as("an RFC 8441 answer").isEqualTo(200);
        return this;
    }

    @Override
    public void onHeaders(Stream stream, HeadersFrame frame) {
        if (frame.getMetaData() instanceof MetaData.Response head) {
            response.complete(head);
        }
        if (frame.isEndStream()) {
            chunks.add(END);
        } else if (reading) {
            stream.demand();
        }
    }

    @Override
    public void onDataAvailable(Stream stream) {
        while (true) {
            Stream.Data data = stream.readData();
            if (data == null) {
                stream.demand();
                return;
            }
            ByteBuffer bytes = data.frame().getByteBuffer();
            if (bytes.hasRemaining()) {
                byte[] chunk = new byte[bytes.remaining()];
                bytes.get(chunk);
                chunks.add(chunk);
            }
            boolean last = data.frame().isEndStream();
            data.release();
            if (last) {
                chunks.add(END);
                return;
            }
        }
    }

    @Override
    public void onReset(Stream stream, ResetFrame frame, Callback callback) {
        response.completeExceptionally(new IOException("stream reset: " + ErrorCode.toString(frame.getError(), "")));
        chunks.add(RESET);
        callback.succeeded();
    }

    @Override
    public void onFailure(Stream stream, int error, String reason, Throwable failure, Callback callback) {
        response.completeExceptionally(failure);
        chunks.add(RESET);
        callback.succeeded();
    }

    /** Reads from now on (see the class comment). */
    void startReading() {
        reading = true;
        stream.demand();
    }

    /** Sends {@code frame} (as {@link RawFrames} encodes it) in one DATA frame; waits until it is written. */
    void send(byte[] frame) throws Exception {
        stream.data(new DataFrame(stream.getId(), ByteBuffer.wrap(frame), false)).get(10, TimeUnit.SECONDS);
    }

    void sendText(String text) throws Exception {
        send(RawFrames.text(text, true));
    }

    void sendClose(int code, String reason) throws Exception {
        send(RawFrames.close(code, reason, true));
    }

    /** The next frame; fails after 10 s without one, or at the end of the stream. */
    RawFrames.Frame read() throws IOException {
        return RawFrames.read(in);
    }

    /** The next message, its fragments joined: {@code [opcode, payload]} as a frame with {@code fin}. */
    RawFrames.Frame readMessage() throws IOException {
        RawFrames.Frame first = read();
        if (first.fin()) {
            return first;
        }
        ByteArrayOutputStream payload = new ByteArrayOutputStream();
        payload.writeBytes(first.payload());
        RawFrames.Frame next;
        do {
            next = read();
            assertThat(next.opcode()).as("a continuation").isEqualTo(RawFrames.CONTINUATION);
            payload.writeBytes(next.payload());
        } while (!next.fin());
        return new RawFrames.Frame(first.opcode(), true, payload.toByteArray());
    }

    String readText() throws IOException {
        RawFrames.Frame frame = readMessage();
        assertThat(frame.opcode()).as("a text message").isEqualTo(RawFrames.TEXT);
        return frame.text();
    }

    /**
     * How the stream ended, within 10 s, skipping what came before: {@code true} at its end (END_STREAM),
     * {@code false} when it was reset; {@code null} if it did not end.
     */
    Boolean awaitEnd() throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (true) {
            byte[] chunk = chunks.poll(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
            if (chunk == null) {
                return null;
            }
            if (chunk == END) {
                return true;
            }
            if (chunk == RESET) {
                return false;
            }
        }
    }

    /** The whole body of a refusal, once the stream has ended. */
    String body() throws Exception {
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        while (true) {
            byte[] chunk = chunks.poll(10, TimeUnit.SECONDS);
            assertThat(chunk).as("the body's end within 10 s").isNotNull();
            assertThat(chunk).as("the stream ended, not reset").isNotSameAs(RESET);
            if (chunk == END) {
                return body.toString(StandardCharsets.UTF_8);
            }
            body.writeBytes(chunk);
        }
    }

    /** Resets the stream (RST_STREAM CANCEL), as a browser does with a WebSocket it gives up on. */
    void reset() throws Exception {
        stream.reset(new ResetFrame(stream.getId(), ErrorCode.CANCEL_STREAM_ERROR.code)).get(10, TimeUnit.SECONDS);
    }

    /** Closes the TCP connection of the stream's session, every stream on it with it. */
    void disconnect() {
        ((HTTP2Session) stream.getSession()).disconnect();
    }

    /** The bytes of the DATA frames, in order; ends at END_STREAM, fails on a reset or after 10 s without data. */
    private final class ChunkStream extends InputStream {
        private byte[] current = new byte[0];
        private int position;
        private boolean ended;

        @Override
        public int read() throws IOException {
            byte[] one = new byte[1];
            return read(one, 0, 1) < 0 ? -1 : one[0] & 0xFF;
        }

        @Override
        public int read(byte[] buffer, int offset, int length) throws IOException {
            while (position == current.length) {
                if (ended) {
                    return -1;
                }
                byte[] chunk;
                try {
                    chunk = chunks.poll(10, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IOException(e);
                }
                if (chunk == null) {
                    throw new IOException("no data within 10 s");
                }
                if (chunk == RESET) {
                    throw new EOFException("stream reset");
                }
                if (chunk == END) {
                    ended = true;
                    continue;
                }
                current = chunk;
                position = 0;
            }
            int n = Math.min(length, current.length - position);
            System.arraycopy(current, position, buffer, offset, n);
            position += n;
            return n;
        }
    }
}
