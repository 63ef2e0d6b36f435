package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A failure in user code is logged at WARN naming the user's object, also when a built-in factory or combinator wraps
 * it: the line itself names it, since a stack trace may hold none of the user's frames (a check that returned
 * {@code null}) and is cut or dropped by many log set-ups. The tests read slf4j-simple's lines on standard error
 * ({@link StandardError}).
 */
class UserCodeLogTest {

    private TestBackend backend;
    private WebSocketProxy proxy;
    private Clients clients;

    @BeforeEach
    void start() throws Exception {
        backend = new TestBackend("b1");
        clients = new Clients();
    }

    @AfterEach
    void stop() throws Exception {
        Clients.tearDown(proxy, clients, backend);
    }

    private void start(ProxyBuilder builder) throws Exception {
        proxy = builder.listen("127.0.0.1", 0).build();
        proxy.start();
    }

    private int upgradeStatus(String... originHeader) throws Exception {
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Request upgrade = RawHttp.Request.upgrade("/ws/x", RawHttp.host(proxy));
            for (String origin : originHeader) {
                upgrade.add("Origin", origin);
            }
            return client.exchange(upgrade).status();
        }
    }

    /** The WARN lines of {@code logged} that contain {@code text}. */
    private static List<String> warnings(String logged, String text) {
        return logged.lines().filter(line -> line.contains(" WARN ") && line.contains(text)).toList();
    }

    /** How a lambda written in this class starts its {@code toString()}, on every JDK. */
    private static String lambdaOfThisClass() {
        return UserCodeLogTest.class.getName() + "$$Lambda";
    }

    @Test
    void namesTheCheckOfAnAuthenticatorOfThatReturnedNull() throws Exception {
        // The proxy makes the NullPointerException itself, so its stack trace has none of the user's frames; the line
        // read "Authenticator dev.wsproxy.Authenticator$$Lambda... failed", naming nothing of the user's.
        start(ProxyBuilder.create().authenticator(Authenticator.of(request -> null)).route("/ws/", backend.backend()));

        String logged = StandardError.of(() -> assertThat(upgradeStatus()).isEqualTo(500));

        assertThat(warnings(logged, " failed on ")).singleElement().asString()
                .contains("Authenticator Authenticator.of(" + lambdaOfThisClass());
    }

    @Test
    void namesBothValidatorsOfAnOrWhenOneThrows() throws Exception {
        start(ProxyBuilder.create()
                .originValidator(OriginValidator.allowList("https://a.example").or((origin, request) -> {
                    throw new IllegalStateException("origin service down");
                }))
                .route("/ws/", backend.backend()));

        String logged = StandardError.of(() -> assertThat(upgradeStatus("https://b.example")).isEqualTo(500));

        assertThat(warnings(logged, "Origin validator ")).singleElement().asString()
                .contains("Origin validator allowList").contains(".or(" + lambdaOfThisClass());
    }

    /** Selects the first candidate, and fails in both session hooks. */
    static final class FailingHooks implements BackendSelector {
        @Override
        public Backend select(SelectionContext context) {
            return context.candidates().get(0).backend();
        }

        @Override
        public void onSessionOpened(Backend backend) {
            throw new IllegalStateException("opened");
        }

        @Override
        public void onSessionClosed(Backend backend) {
            throw new IllegalStateException("closed");
        }
    }

    @Test
    void namesTheSelectorWhoseSessionHooksThrew() throws Exception {
        SessionEvents events = new SessionEvents();
        start(ProxyBuilder.create().listener(events)
                .route("/ws/", r -> r.backends(backend.backend()).backendSelector(new FailingHooks())));

        String logged = StandardError.of(() -> {
            WsRecorder client = clients.connect(Clients.ws(proxy, "/ws/x"));
            client.sendText("hello");
            assertThat(client.nextText()).as("the session goes on").isEqualTo("hello");
            client.session.close();
            // The selector's onSessionClosed runs, and logs, before the listeners hear of the close.
            events.nextClose();
        });

        String selector = "Backend selector " + FailingHooks.class.getName() + "@";
        assertThat(warnings(logged, "failed in onSessionOpened")).singleElement().asString().contains(selector);
        assertThat(warnings(logged, "failed in onSessionClosed")).singleElement().asString().contains(selector);
    }
}
