using Microsoft.Extensions.Options;

namespace VideoMatch.Server.Observability;

/// <summary>
/// The plain-HTTP side port for operators: Prometheus metrics at <c>/metrics</c>, and HTTP probes at
/// <c>/healthz/live</c> and <c>/healthz/ready</c> (for probes that cannot speak gRPC, or a gRPC port behind
/// TLS). Bound from the <c>Metrics</c> section.
/// </summary>
public sealed class MetricsOptions
{
    public const string Section = "Metrics";

    /// <summary>Where the side port listens, <c>http://HOST:PORT</c>; empty turns it off. Default http://127.0.0.1:9464.</summary>
    public string Url { get; set; } = "http://127.0.0.1:9464";

    internal bool Enabled => Url.Length > 0;
}

internal sealed class MetricsOptionsValidator : IValidateOptions<MetricsOptions>
{
    public ValidateOptionsResult Validate(string? name, MetricsOptions options) =>
        !options.Enabled || Port(options.Url) is not null
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail($"Metrics:Url must be http://HOST:PORT (HOST may be + or * for every address) with an explicit, non-zero port and no path, or empty to turn metrics off (got '{options.Url}').");

    /// <summary>The port of a well-formed side-port address, as Kestrel takes addresses (+ and * for every interface); else null.</summary>
    internal static int? Port(string url)
    {
        var parsable = url.Replace("://+:", "://localhost:", StringComparison.Ordinal).Replace("://*:", "://localhost:", StringComparison.Ordinal);
        return Uri.TryCreate(parsable, UriKind.Absolute, out var parsed) && parsed.Scheme == Uri.UriSchemeHttp && parsed.AbsolutePath == "/"
            && parsed.Port is > 0 and <= 65535 && parsable.Contains($":{parsed.Port}", StringComparison.Ordinal)
            ? parsed.Port
            : null;
    }
}
