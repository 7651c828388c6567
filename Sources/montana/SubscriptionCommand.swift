import ArgumentParser
import Foundation
import Logging
import MontanaCrypto
import MontanaDirectory
import MontanaNode
import MontanaTransport
import MontanaWire

struct SubscriptionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "subscription",
        abstract: "Create and serve subscription documents for clients.",
        discussion: """
        A subscription names the alliance (public parts only), some bootstrap fronts (member links), \
        optionally an account (a pass, or a bearer account everyone with the document shares), and \
        where and how often clients refresh it. `montana client` reads it from a file or an http:// URL.
        """,
        subcommands: [SubscriptionCreate.self, SubscriptionServe.self]
    )
}

struct SubscriptionCreate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Write a subscription document.")

    /// A file of links is small: 64 KiB.
    static let maxLinkFileBytes = 64 * 1024

    @Option(help: "The alliance's public file (alliance.json).")
    var alliance: String

    @Option(parsing: .upToNextOption, help: "Bootstrap fronts: montana:// links, or files with one link per line ('#' comments).")
    var bootstrap: [String] = []

    @Option(help: "A pass file to hand to the users (from `montana pass issue`).")
    var pass: String?

    @Flag(help: "Create a bearer account: a new account whose seed is in the document, shared by everyone who has it.")
    var bearerAccount = false

    @Option(help: "The title clients show; default: the alliance's name.")
    var title: String?

    @Option(help: "Where clients fetch updates (http:// URL); default: wherever they fetched the document.")
    var updateURL: String?

    @Option(help: "How often clients refresh, in hours (1-720).")
    var intervalHours = SubscriptionUpdate.defaultIntervalHours

    @Option(help: "Where to write the document.")
    var out: String

    func run() throws {
        guard !bootstrap.isEmpty else { throw ValidationError("--bootstrap: give at least one member link (or a file of links)") }
        guard !(pass != nil && bearerAccount) else { throw ValidationError("--pass and --bearer-account: choose one") }
        guard SubscriptionUpdate.intervalHours.contains(intervalHours) else {
            throw ValidationError("--interval-hours: must be \(SubscriptionUpdate.intervalHours.lowerBound)-\(SubscriptionUpdate.intervalHours.upperBound)")
        }
        if let updateURL, let problem = SubscriptionUpdate.urlProblem(updateURL) { throw ValidationError("--update-url: \(problem)") }
        let document: AllianceDocument
        do { document = try AllianceDocument.load(path: alliance) } catch { throw ValidationError("\(error)") }

        var links: [MemberLink] = []
        for (text, origin) in try linkTexts() {
            let link: MemberLink
            do { link = try MemberLink.parse(text) } catch { throw ValidationError("\(origin): \(error)") }
            guard link.alliance == document.uuidBytes else {
                throw ValidationError("\(origin): the link is for alliance \(Hex.encode(link.alliance)), not \(document.name) (\(document.uuid))")
            }
            if !links.contains(link) { links.append(link) }
        }

        var account: SubscriptionAccount?
        if let pass {
            let file: PassFile
            do { file = try PassFile.load(path: pass) } catch { throw ValidationError("\(error)") }
            guard file.isSigned(byOneOf: document.passIssuerKeys) else {
                throw ValidationError("\(pass): signed: not signed by one of \(alliance)'s pass_issuers")
            }
            account = SubscriptionAccount(pass: file)
        } else if bearerAccount {
            account = SubscriptionAccount(bearerSeed: SecureRandom.bytes(32))
        }

        let subscription: SubscriptionDocument
        do {
            subscription = try SubscriptionDocument.create(alliance: document, links: links, title: title, account: account,
                                                           update: SubscriptionUpdate(url: updateURL, intervalHours: intervalHours),
                                                           now: WallClock.now())
            try subscription.write(to: out)
        } catch {
            throw ValidationError("\(error)")
        }
        print("subscription \"\(subscription.title)\" for alliance \(document.name)")
        print("bootstrap links:")
        for link in links { print("  \(link.text)") }
        if let p = subscription.account?.pass {
            print("account: pass for \(Hex.encode(p.accountID).prefix(16))…, valid to \(PassIssue.date(p.notAfter))")
        }
        if let key = try? subscription.account?.bearerAccount() {
            print("account: bearer account \(Hex.encode(key.accountID).prefix(16))… shared by everyone with this document")
            print("  (it has no pass: issue one with `montana pass issue --account \(Hex.encode(key.accountID)) ...` if exits require it)")
        }
        print("update: every \(intervalHours) h\(updateURL.map { " from \($0)" } ?? "")")
        print("wrote \(out)\(subscription.holdsSecret ? " (0600: it holds the bearer account's seed)" : "")")
    }

    /// Each `--bootstrap` value is a link, or a file of links (one per line, blank lines and
    /// `#` comments skipped). Returns the links with where they came from, for errors.
    private func linkTexts() throws -> [(String, String)] {
        var out: [(String, String)] = []
        for value in bootstrap {
            if value.lowercased().hasPrefix("montana://") {
                out.append((value, "--bootstrap"))
                continue
            }
            var info = stat()
            guard stat(value, &info) == 0 else {
                throw ValidationError("--bootstrap: \(value) is neither a montana:// link nor a readable file")
            }
            guard info.st_size <= Self.maxLinkFileBytes, let data = FileManager.default.contents(atPath: value) else {
                throw ValidationError("\(value): a file of links may have at most \(Self.maxLinkFileBytes) bytes")
            }
            for (i, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let text = line.trimmingCharacters(in: .whitespacesAndNewlines)
                if text.isEmpty || text.hasPrefix("#") { continue }
                out.append((text, "\(value):\(i + 1)"))
            }
        }
        guard !out.isEmpty else { throw ValidationError("--bootstrap: the files given hold no links") }
        return out
    }
}

struct SubscriptionServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a subscription document over HTTP until SIGINT/SIGTERM.",
        discussion: """
        Answers GET / and GET /sub (and the path of the document's update URL) with the document and \
        the usual profile-update-interval, profile-title and subscription-userinfo headers. The file \
        is re-read on every request, so rewriting it (montana subscription create --out the same file) \
        publishes an update. Plain HTTP: put a TLS reverse proxy in front for https://.
        """
    )

    @Option(help: "The subscription document to serve.")
    var file: String

    @Option(help: "Listen address (host:port), e.g. 0.0.0.0:8080.")
    var listen: String

    @Option(help: "Log level (trace, debug, info, notice, warning, error).")
    var logLevel = "info"

    func run() async throws {
        let address: HostPort
        do { address = try HostPort(parsing: listen) } catch { throw ValidationError("--listen: \(listen) is not host:port (\(error))") }
        let logger = LogSetup.bootstrap(Logger.Level(rawValue: logLevel) ?? .info, label: "montana.subscription")
        let server = SubscriptionServer(file: file, listen: address, logger: logger)
        let port: Int
        do {
            port = try await server.start()
        } catch {
            await server.stop()
            throw ValidationError("\(error)")
        }
        let shown = HostPort(host: address.host, port: port)
        print("serving \(file) on http://\(shown)/ (also /sub); Ctrl-C stops")
        let signal = await TerminationSignal.wait()
        logger.info("shutting down", metadata: ["signal": "\(signal)"])
        await server.stop()
    }
}
