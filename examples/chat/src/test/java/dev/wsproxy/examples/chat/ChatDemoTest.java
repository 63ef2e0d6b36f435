package dev.wsproxy.examples.chat;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.WebSocket;
import java.net.http.WebSocketHandshakeException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Runs the chat demo on a free port and talks to it like a browser would, with the JDK's HTTP and WebSocket client. */
class ChatDemoTest {

    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    private ChatDemo demo;
    private URI uri;

    @BeforeEach
    void startDemo() throws Exception {
        demo = new ChatDemo();
        uri = demo.start(0);
    }

    @AfterEach
    void stopDemo() {
        demo.close();
    }

    @Test
    void startsOnTheRequestedFreePort() {
        assertThat(uri.getScheme()).isEqualTo("http");
        assertThat(uri.getHost()).isEqualTo("127.0.0.1");
        assertThat(uri.getPort()).isPositive();
        assertThat(uri.getPath()).isEqualTo("/");
        assertThat(demo.proxy().uri()).isEqualTo(uri);
    }

    @Test
    void servesTheChatPageAtRoot() throws Exception {
        HttpResponse<String> page = get("/");

        assertThat(page.statusCode()).isEqualTo(200);
        assertThat(page.headers().firstValue("Content-Type")).hasValueSatisfying(
                type -> assertThat(type).startsWith("text/html"));
        assertThat(page.body()).contains("<title>wsproxy chat</title>", "<main id=\"chat\">", "src=\"chat.js\"");

        HttpResponse<String> script = get("/chat.js");
        assertThat(script.statusCode()).isEqualTo(200);
        assertThat(script.body()).contains("'/ws/chat?nick='");
        // The page keeps a text the backend would refuse, rather than send it and lose it with the connection (1009).
        assertThat(script.body()).contains("const MAX_MESSAGE_BYTES = " + ChatBackend.MAX_MESSAGE_SIZE + ";");
    }

    @Test
    void answers404OutsideThePageAndTheRoute() throws Exception {
        assertThat(get("/missing.html").statusCode()).isEqualTo(404);
    }

    @Test
    void broadcastsEachMessageToEveryClientThroughTheProxy() throws Exception {
        WebSocketRecorder alice = new WebSocketRecorder();
        WebSocket aliceSocket = connect("alice", alice);
        assertThat(alice.nextEvent()).isEqualTo("{\"type\":\"join\",\"nick\":\"alice\",\"online\":1}");

        WebSocketRecorder bob = new WebSocketRecorder();
        WebSocket bobSocket = connect("bob", bob);
        assertThat(bob.nextEvent()).isEqualTo("{\"type\":\"join\",\"nick\":\"bob\",\"online\":2}");
        assertThat(alice.nextEvent()).isEqualTo("{\"type\":\"join\",\"nick\":\"bob\",\"online\":2}");
        assertThat(demo.proxy().sessions()).hasSize(2);

        aliceSocket.sendText("hello \"everyone\"", true).get(5, TimeUnit.SECONDS);

        String expected = "{\"type\":\"message\",\"nick\":\"alice\",\"text\":\"hello \\\"everyone\\\"\"}";
        assertThat(alice.nextEvent()).isEqualTo(expected);
        assertThat(bob.nextEvent()).isEqualTo(expected);

        aliceSocket.sendClose(WebSocket.NORMAL_CLOSURE, "bye").get(5, TimeUnit.SECONDS);
        assertThat(alice.awaitClose()).isEqualTo(WebSocket.NORMAL_CLOSURE);
        assertThat(bob.nextEvent()).isEqualTo("{\"type\":\"leave\",\"nick\":\"alice\",\"online\":1}");

        bobSocket.sendClose(WebSocket.NORMAL_CLOSURE, "bye").get(5, TimeUnit.SECONDS);
        assertThat(bob.awaitClose()).isEqualTo(WebSocket.NORMAL_CLOSURE);

        await().atMost(Duration.ofSeconds(5)).untilAsserted(() -> {
            assertThat(demo.proxy().sessions()).isEmpty();
            assertThat(demo.backend().onlineCount()).isZero();
        });
        assertThat(alice.events()).isEmpty();
        assertThat(bob.events()).isEmpty();
    }

    @Test
    void cutsALongNicknameBeforeAnEmojiRatherThanThroughIt() throws Exception {
        // The backend cut nicknames at 32 UTF-16 units: 31 letters and an emoji (a surrogate pair) kept only the
        // emoji's first half, which Jetty's UTF-8 encoder sends as '?'. The cut falls before the emoji now.
        String letters = "a".repeat(ChatBackend.MAX_NICK_LENGTH - 1);
        WebSocketRecorder cut = new WebSocketRecorder();
        connect(letters + "\uD83D\uDE00", cut);
        assertThat(cut.nextEvent()).isEqualTo("{\"type\":\"join\",\"nick\":\"" + letters + "\",\"online\":1}");

        // An emoji that ends at the limit is kept whole.
        String fits = "a".repeat(ChatBackend.MAX_NICK_LENGTH - 2) + "\uD83D\uDE00";
        WebSocketRecorder whole = new WebSocketRecorder();
        connect(fits + "b", whole);
        assertThat(whole.nextEvent()).isEqualTo("{\"type\":\"join\",\"nick\":\"" + fits + "\",\"online\":2}");
    }

    @Test
    void dropsControlAndBidiCharactersFromNicknames() throws Exception {
        // They reached every page and log as they were: a line break or NUL in a name, and a right-to-left override
        // (U+202E) that turned the rest of each of its lines around, so that it and "ecila" read as "alice".
        WebSocketRecorder spoof = new WebSocketRecorder();
        connect("\u202Eec\u0000il\na\u2066\u200F", spoof);
        assertThat(spoof.nextEvent()).isEqualTo("{\"type\":\"join\",\"nick\":\"ecila\",\"online\":1}");

        // Nothing left: the name everyone gets without one.
        WebSocketRecorder empty = new WebSocketRecorder();
        connect("\u202E\u0007 \t", empty);
        assertThat(empty.nextEvent()).isEqualTo("{\"type\":\"join\",\"nick\":\"anonymous\",\"online\":2}");
    }

    @Test
    void rejectsPagesOfOtherSitesWith403() {
        WebSocket.Builder builder = http.newWebSocketBuilder().header("Origin", "https://evil.example");

        assertThat(builder.buildAsync(chatUri("mallory"), new WebSocketRecorder()))
                .failsWithin(Duration.ofSeconds(5))
                .withThrowableOfType(ExecutionException.class)
                .havingCause()
                .isInstanceOfSatisfying(WebSocketHandshakeException.class,
                        e -> assertThat(e.getResponse().statusCode()).isEqualTo(403));
        assertThat(demo.backend().onlineCount()).isZero();
    }

    @Test
    void closesTheSessionOfAClientThatSendsTooBigAMessageWith1009() throws Exception {
        WebSocketRecorder dave = new WebSocketRecorder();
        WebSocket socket = connect("dave", dave);
        assertThat(dave.nextEvent()).contains("\"join\"");

        socket.sendText("x".repeat(ChatBackend.MAX_MESSAGE_SIZE + 1), true).get(5, TimeUnit.SECONDS);

        assertThat(dave.awaitClose()).isEqualTo(1009);
        await().atMost(Duration.ofSeconds(5)).untilAsserted(() -> {
            assertThat(demo.proxy().sessions()).isEmpty();
            assertThat(demo.backend().onlineCount()).isZero();
        });
    }

    @Test
    void closesTheSessionOfAClientThatSendsABinaryMessageWith1003AndTellsTheOthers() throws Exception {
        // The chat speaks text: a binary message was dropped unseen, and its sender, told nothing, went on as if the
        // room had read it.
        WebSocketRecorder bob = new WebSocketRecorder();
        connect("bob", bob);
        assertThat(bob.nextEvent()).contains("\"join\"");
        WebSocketRecorder mallory = new WebSocketRecorder();
        WebSocket socket = connect("mallory", mallory);
        assertThat(mallory.nextEvent()).contains("\"join\"");
        assertThat(bob.nextEvent()).contains("\"join\"");

        socket.sendBinary(ByteBuffer.wrap("hello".getBytes(StandardCharsets.UTF_8)), true).get(5, TimeUnit.SECONDS);

        assertThat(mallory.awaitClose()).isEqualTo(1003);
        assertThat(bob.nextEvent()).isEqualTo("{\"type\":\"leave\",\"nick\":\"mallory\",\"online\":1}");
        await().atMost(Duration.ofSeconds(5)).untilAsserted(() -> assertThat(demo.proxy().sessions()).hasSize(1));
    }

    @Test
    void broadcastsTheLargestMessagesTheBackendAcceptsEvenWhenEscapingMakesThemLonger() throws Exception {
        // The proxy's limit applies to the backend's broadcasts too. It was the backend's 16 KiB: a 3,000-byte text
        // of control characters (six bytes each once escaped) or a text of 16 KiB made an event over it, and the
        // proxy closed every session it was broadcast to with 1001, the sender's included.
        WebSocketRecorder alice = new WebSocketRecorder();
        WebSocket aliceSocket = connect("alice", alice);
        assertThat(alice.nextEvent()).contains("\"join\"");
        WebSocketRecorder bob = new WebSocketRecorder();
        connect("bob", bob);
        assertThat(bob.nextEvent()).contains("\"join\"");
        assertThat(alice.nextEvent()).contains("\"join\"");

        int max = ChatBackend.MAX_MESSAGE_SIZE;
        for (String text : List.of("\u0001".repeat(max), "x".repeat(max), "\"".repeat(max))) {
            aliceSocket.sendText(text, true).get(5, TimeUnit.SECONDS);

            String expected = "{\"type\":\"message\",\"nick\":\"alice\",\"text\":" + ChatBackend.json(text) + "}";
            assertThat(bob.nextEvent()).isEqualTo(expected);
            assertThat(alice.nextEvent()).isEqualTo(expected);
        }
        assertThat(demo.proxy().sessions()).hasSize(2);
    }

    @Test
    void closesAClientThatFloodsTheRoomWith1008AndTellsTheOthers() throws Exception {
        WebSocketRecorder bob = new WebSocketRecorder();
        connect("bob", bob);
        assertThat(bob.nextEvent()).contains("\"join\"");
        WebSocketRecorder eve = new WebSocketRecorder();
        WebSocket eveSocket = connect("eve", eve);
        assertThat(eve.nextEvent()).contains("\"join\"");
        assertThat(bob.nextEvent()).contains("\"join\"");

        // Far more than the 20 a second the route allows, sent as fast as the socket takes them; sends fail once the
        // proxy has closed the session.
        for (int i = 0; i < 200 && !eve.closed(); i++) {
            try {
                eveSocket.sendText("spam " + i, true).get(5, TimeUnit.SECONDS);
            } catch (ExecutionException e) {
                break;
            }
        }

        assertThat(eve.awaitClose()).isEqualTo(1008);
        // Bob gets the messages the rate let through, then eve's leave.
        String event;
        do {
            event = bob.nextEvent();
        } while (event.startsWith("{\"type\":\"message\""));
        assertThat(event).isEqualTo("{\"type\":\"leave\",\"nick\":\"eve\",\"online\":1}");
        // The backend announces the leave as its leg closes; the proxy's session ends once both legs have.
        await().atMost(Duration.ofSeconds(5)).untilAsserted(() -> assertThat(demo.proxy().sessions()).hasSize(1));
    }

    @Test
    void closingTheDemoClosesOpenSessionsWithGoingAway() throws Exception {
        WebSocketRecorder carol = new WebSocketRecorder();
        connect("carol", carol);
        assertThat(carol.nextEvent()).contains("\"join\"");

        demo.close();

        assertThat(carol.awaitClose()).isEqualTo(1001);
        assertThat(demo.proxy().sessions()).isEmpty();
    }

    @Test
    void mainSaysWhyItCannotListenOnATakenPortAndExitsWith1() {
        // Jetty's message alone, "Failed to bind to /127.0.0.1:8080", did not say why: in use, or not allowed.
        int taken = uri.getPort();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();

        int status = Main.run(new String[] {String.valueOf(taken)}, new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));

        assertThat(status).isEqualTo(1);
        assertThat(out.toString(StandardCharsets.UTF_8)).isEmpty();
        assertThat(err.toString(StandardCharsets.UTF_8).lines()).containsExactly(
                "Chat demo failed to start on port " + taken + ": Failed to bind to /127.0.0.1:" + taken
                        + ": Address already in use",
                "Pick another port, or 0 for a free one. Usage: java [-Dport=PORT] -jar wsproxy-chat.jar [PORT]");
    }

    private HttpResponse<String> get(String path) throws Exception {
        HttpRequest request = HttpRequest.newBuilder(uri.resolve(path)).timeout(Duration.ofSeconds(5)).build();
        return http.send(request, HttpResponse.BodyHandlers.ofString());
    }

    private WebSocket connect(String nick, WebSocketRecorder recorder) {
        try {
            return http.newWebSocketBuilder().buildAsync(chatUri(nick), recorder).get(5, TimeUnit.SECONDS);
        } catch (Exception e) {
            throw new CompletionException("connect " + nick, e);
        }
    }

    private URI chatUri(String nick) {
        String query = "nick=" + URLEncoder.encode(nick, StandardCharsets.UTF_8);
        return URI.create("ws://" + uri.getAuthority() + "/ws/chat?" + query);
    }
}
