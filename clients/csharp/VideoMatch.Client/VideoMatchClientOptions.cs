using System.Security.Cryptography.X509Certificates;

namespace VideoMatch.Client;

/// <summary>Where the server is and how to reach it.</summary>
public sealed class VideoMatchClientOptions
{
    /// <summary>Server address. <c>http://</c> is plaintext HTTP/2; <c>https://</c> uses TLS. Default http://127.0.0.1:50051.</summary>
    public Uri Address { get; set; } = new("http://127.0.0.1:50051");

    /// <summary>
    /// Several servers (pods) behind one client: calls are balanced over them round-robin, each stream on one, and a
    /// server that goes away is skipped. All with the same scheme. Empty: <see cref="Address"/> alone. For a DNS name
    /// with an address per pod (a Kubernetes headless Service), use <c>dns:///name:port</c> as <see cref="Address"/>.
    /// </summary>
    public IList<Uri> Addresses { get; } = [];

    /// <summary>
    /// TLS for a <c>dns:///name:port</c> <see cref="Address"/> (certificates are checked against the name). An
    /// http:// or https:// address says it by its scheme, so this must stay false with those.
    /// </summary>
    public bool Tls { get; set; }

    /// <summary>
    /// How long a connection with calls open may go without a frame from the server before the client pings it;
    /// <see cref="Timeout.InfiniteTimeSpan"/>: never. A server that stops answering (a hung pod, a node gone without
    /// closing its connections) is then noticed within this plus <see cref="KeepAliveTimeout"/>, and a resumable stream
    /// moves on. Default 10 s.
    /// </summary>
    public TimeSpan KeepAlive { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long the client waits for a ping's answer before it drops the connection. Default 10 s.</summary>
    public TimeSpan KeepAliveTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Sent as <c>authorization: Bearer …</c> on every call when set (servers that require a key check it).</summary>
    public string? ApiKey { get; set; }

    /// <summary>Client certificate for mutual TLS (https addresses only).</summary>
    public X509Certificate2? ClientCertificate { get; set; }

    /// <summary>Accept a server certificate that does not validate (test servers with self-signed certificates).</summary>
    public bool AllowUntrustedServerCertificate { get; set; }

    /// <summary>Largest message either way, in bytes. Default 64 MiB (frames can be large; the server sets its own limit).</summary>
    public int MaxMessageBytes { get; set; } = 64 * 1024 * 1024;

    /// <summary>
    /// Which of the server's models to use (its ListModels names them), for every call that names none itself:
    /// GetModelInfo, MatchPair and each stream's config. Null or empty: the server's default model.
    /// </summary>
    public string? Model { get; set; }
}
