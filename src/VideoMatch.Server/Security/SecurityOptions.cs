using VideoMatch.Engine;
using Microsoft.Extensions.Options;

namespace VideoMatch.Server.Security;

/// <summary>Who may call, over what, and how much. Bound from the <c>Security</c> section.</summary>
public sealed class SecurityOptions
{
    public const string Section = "Security";

    /// <summary>
    /// Server certificate (PEM) for TLS; with <see cref="CertificateKeyPath"/>. When set and no address is
    /// configured, the server listens on https://127.0.0.1:50051. Empty (default): plaintext HTTP/2.
    /// </summary>
    public string CertificatePath { get; set; } = "";

    /// <summary>Private key (PEM) of <see cref="CertificatePath"/>.</summary>
    public string CertificateKeyPath { get; set; } = "";

    /// <summary>
    /// Mutual TLS: when set, clients must present a certificate that chains to this CA (PEM). Needs TLS.
    /// </summary>
    public string ClientCertificateAuthorityPath { get; set; } = "";

    /// <summary>
    /// Accepted bearer tokens (<c>authorization: Bearer KEY</c>). Empty (default): no check. grpc.health.v1
    /// stays open so that probes work without a key.
    /// </summary>
    public string[] ApiKeys { get; set; } = [];

    /// <summary>MatchStream calls one connection may hold at once; more get RESOURCE_EXHAUSTED. Default 16.</summary>
    public int MaxStreamsPerConnection { get; set; } = 16;

    /// <summary>
    /// Frames per second one stream may send, with a burst of one second's worth; a stream that goes faster
    /// is ended with RESOURCE_EXHAUSTED after the frames before were answered. 0: no limit. Default 1000.
    /// </summary>
    public double MaxFramesPerSecondPerStream { get; set; } = 1000;

    /// <summary>
    /// Serve gRPC server reflection (grpcurl, Postman discover the API without the proto files). Behind the API
    /// key when keys are set. Default true.
    /// </summary>
    public bool Reflection { get; set; } = true;

    /// <summary>grpc.health.v1 Watch calls the server holds open at once, all clients together; more get RESOURCE_EXHAUSTED. Default 64.</summary>
    public int MaxHealthWatches { get; set; } = 64;

    internal bool UsesTls => CertificatePath.Length > 0;
}

internal sealed class SecurityOptionsValidator : IValidateOptions<SecurityOptions>
{
    public ValidateOptionsResult Validate(string? name, SecurityOptions options)
    {
        var problems = new List<string>();
        if (options.CertificatePath.Length > 0 != options.CertificateKeyPath.Length > 0)
        {
            problems.Add("Security:CertificatePath and Security:CertificateKeyPath go together: set both for TLS, or neither.");
        }

        foreach (var (key, path) in new[]
        {
            ("Security:CertificatePath", options.CertificatePath),
            ("Security:CertificateKeyPath", options.CertificateKeyPath),
            ("Security:ClientCertificateAuthorityPath", options.ClientCertificateAuthorityPath),
        })
        {
            if (path.Length > 0 && !File.Exists(path))
            {
                problems.Add($"{key} '{path}' does not exist.");
            }
        }

        if (options.ClientCertificateAuthorityPath.Length > 0 && !options.UsesTls)
        {
            problems.Add("Security:ClientCertificateAuthorityPath (mutual TLS) needs TLS: set Security:CertificatePath and Security:CertificateKeyPath too.");
        }

        if (options.ApiKeys.Any(k => string.IsNullOrWhiteSpace(k) || k.Length < 16))
        {
            problems.Add("Security:ApiKeys must be at least 16 characters each (no empty keys).");
        }

        SettingRange.Check(problems, "Security:MaxHealthWatches", options.MaxHealthWatches, 0, 100_000);
        SettingRange.Check(problems, "Security:MaxStreamsPerConnection", options.MaxStreamsPerConnection, 1, 10_000);
        SettingRange.Check(problems, "Security:MaxFramesPerSecondPerStream", options.MaxFramesPerSecondPerStream, 0, 1_000_000, "0: no limit");

        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }
}
