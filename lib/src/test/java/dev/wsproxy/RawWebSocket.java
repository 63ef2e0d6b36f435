package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.concurrent.ThreadLocalRandom;

/**
 * A client on a bare socket that writes handcrafted frames, for what a normal client cannot do: split UTF-8
 * sequences across frames, send invalid payloads, vanish without a close frame.
 */
final class RawWebSocket implements AutoCloseable {

    /** A frame as read from the proxy. */
    record Frame(boolean fin, int opcode, byte[] payload) {
        int closeCode() {
            return payload.length >= 2 ? ((payload[0] & 0xFF) << 8) | (payload[1] & 0xFF) : 1005;
        }

        String text() {
            return new String(payload, opcode == 8 && payload.length >= 2 ? 2 : 0,
                    opcode == 8 && payload.length >= 2 ? payload.length - 2 : payload.length, StandardCharsets.UTF_8);
        }
    }

    /** Fails unless {@code frame} is a close frame with this code and reason. */
    static void assertCloseFrame(Frame frame, int code, String reason) {
        assertThat(frame.opcode()).as("a close frame").isEqualTo(CLOSE);
        assertThat(frame.closeCode()).as("close code").isEqualTo(code);
        assertThat(frame.text()).as("close reason").isEqualTo(reason);
    }

    static final int TEXT = 1;
    static final int BINARY = 2;
    static final int CONTINUATION = 0;
    static final int CLOSE = 8;
    static final int PING = 9;
    static final int PONG = 10;

    final Socket socket;
    private final OutputStream out;
    private final DataInputStream in;
    final String responseHead;

    private RawWebSocket(Socket socket, String responseHead) throws IOException {
        this.socket = socket;
        this.out = socket.getOutputStream();
        this.in = new DataInputStream(socket.getInputStream());
        this.responseHead = responseHead;
    }

    /** Opens a socket and performs the handshake; fails unless the answer is 101. */
    static RawWebSocket connect(URI uri) throws IOException {
        return connect(uri, 0);
    }

    /** Like {@link #connect(URI)} with a receive buffer of the given size (0: the system's default). */
    static RawWebSocket connect(URI uri, int receiveBufferSize) throws IOException {
        return over(socketTo(uri, receiveBufferSize), uri);
    }

    /**
     * A plain socket connected to {@code uri}'s host and port, with a receive buffer of the given size (0: the
     * system's default) and a 10 s read timeout, for {@link #over} after bytes of the test's own.
     */
    static Socket socketTo(URI uri, int receiveBufferSize) throws IOException {
        Socket socket = new Socket();
        if (receiveBufferSize > 0) {
            socket.setReceiveBufferSize(receiveBufferSize);
        }
        socket.setSoTimeout(10_000);
        socket.connect(new InetSocketAddress(uri.getHost(), uri.getPort()), 5_000);
        return socket;
    }

    /**
     * Performs the handshake for {@code uri}'s path on a connected socket (a TLS socket, one that already sent a
     * PROXY-protocol line); fails unless the answer is 101.
     */
    static RawWebSocket over(Socket socket, URI uri) throws IOException {
        byte[] keyBytes = new byte[16];
        ThreadLocalRandom.current().nextBytes(keyBytes);
        String request = "GET " + uri.getRawPath() + (uri.getRawQuery() == null ? "" : "?" + uri.getRawQuery())
                + " HTTP/1.1\r\nHost: " + uri.getHost() + ":" + uri.getPort()
                + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
                + Base64.getEncoder().encodeToString(keyBytes) + "\r\n\r\n";
        socket.getOutputStream().write(request.getBytes(StandardCharsets.US_ASCII));
        String head = readHead(socket.getInputStream());
        assertThat(head).startsWith("HTTP/1.1 101");
        return new RawWebSocket(socket, head);
    }

    private static String readHead(InputStream in) throws IOException {
        ByteArrayOutputStream head = new ByteArrayOutputStream();
        int matched = 0;
        while (matched < 4) {
            int b = in.read();
            if (b < 0) {
                throw new EOFException("connection closed in the response head: " + head);
            }
            head.write(b);
            matched = (b == '\r' && (matched == 0 || matched == 2)) || (b == '\n' && (matched == 1 || matched == 3))
                    ? matched + 1 : 0;
        }
        return head.toString(StandardCharsets.US_ASCII);
    }

    /** Writes one masked frame. */
    void send(boolean fin, int opcode, byte[] payload) throws IOException {
        ByteArrayOutputStream frame = new ByteArrayOutputStream();
        frame.write((fin ? 0x80 : 0) | opcode);
        int length = payload.length;
        if (length < 126) {
            frame.write(0x80 | length);
        } else if (length < 65536) {
            frame.write(0x80 | 126);
            frame.write(length >>> 8);
            frame.write(length);
        } else {
            frame.write(0x80 | 127);
            for (int shift = 56; shift >= 0; shift -= 8) {
                frame.write((int) ((long) length >>> shift));
            }
        }
        byte[] mask = new byte[4];
        ThreadLocalRandom.current().nextBytes(mask);
        frame.write(mask);
        for (int i = 0; i < length; i++) {
            frame.write(payload[i] ^ mask[i & 3]);
        }
        out.write(frame.toByteArray());
        out.flush();
    }

    /** Writes bytes as they are, for frames no client library would produce. */
    void sendRaw(byte[] bytes) throws IOException {
        out.write(bytes);
        out.flush();
    }

    /**
     * Answers the proxy's close frame with {@code code}, if the connection is still there: for codes other than 1000 and
     * 3000+ Jetty drops the connection right after its close frame, and a write then fails.
     */
    void answerClose(int code) {
        try {
            sendClose(code, "");
        } catch (IOException e) {
            // Dropped already.
        }
    }

    void sendClose(int code, String reason) throws IOException {
        byte[] text = reason.getBytes(StandardCharsets.UTF_8);
        byte[] payload = new byte[2 + text.length];
        payload[0] = (byte) (code >>> 8);
        payload[1] = (byte) code;
        System.arraycopy(text, 0, payload, 2, text.length);
        send(true, CLOSE, payload);
    }

    /** Reads one frame from the proxy (server frames are not masked). */
    Frame read() throws IOException {
        int b0 = in.readUnsignedByte();
        int b1 = in.readUnsignedByte();
        long length = b1 & 0x7F;
        if (length == 126) {
            length = in.readUnsignedShort();
        } else if (length == 127) {
            length = in.readLong();
        }
        assertThat(b1 & 0x80).as("server frames are not masked").isZero();
        byte[] payload = new byte[Math.toIntExact(length)];
        in.readFully(payload);
        return new Frame((b0 & 0x80) != 0, b0 & 0x0F, payload);
    }

    /** Reads until a close frame, skipping data frames. */
    Frame readClose() throws IOException {
        Frame frame;
        do {
            frame = read();
        } while (frame.opcode() != CLOSE);
        return frame;
    }

    /** Drops the connection at once, with no close frame: an RST. */
    void abort() throws IOException {
        socket.setSoLinger(true, 0);
        socket.close();
    }

    @Override
    public void close() throws IOException {
        socket.close();
    }
}
