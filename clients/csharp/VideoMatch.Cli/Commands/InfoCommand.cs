using System.CommandLine;
using System.Globalization;
using Grpc.Core;
using Spectre.Console;
using VideoMatch.Contracts.V1;

namespace VideoMatch.Cli.Commands;

/// <summary><c>videomatch info</c>: health and model of a server.</summary>
internal static class InfoCommand
{
    public static Command Create(CliContext context)
    {
        var command = new Command("info", "Show the server's health and the model it serves.");
        command.SetAction(Cli.Guard(context, async (parse, cancellationToken) =>
        {
            using var client = Cli.Connect(parse);
            var health = await client.CheckHealthAsync(cancellationToken).ConfigureAwait(false);
            var table = new Table().AddColumn("server").AddColumn(parse.GetValue(Cli.Server)!);
            table.AddRow("health", health switch
            {
                Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving => "SERVING",
                Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.NotServing => "NOT_SERVING",
                _ => health.ToString().ToUpperInvariant(),
            });
            var console = context.Tables;
            try
            {
                var models = await client.ListModelsAsync(cancellationToken).ConfigureAwait(false);
                table.AddRow("models", string.Join(", ", models.Models.Select(m =>
                    m.Name + (m.Name == models.DefaultModel ? " (default)" : "") + (m.Serving ? "" : " NOT_SERVING"))));
            }
            catch (RpcException e) when (Cli.AnsweredByServer(e) && e.StatusCode == StatusCode.Unimplemented)
            {
                // A server from before several models: it serves one.
            }

            ModelInfo info;
            try
            {
                info = await client.GetModelInfoAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (RpcException e) when (Cli.AnsweredByServer(e) && e.StatusCode == StatusCode.Unavailable)
            {
                // Running, but not serving yet (loading, warming up), any more (stopping), or at all (a failed self-check).
                table.AddRow("reason", e.Status.Detail);
                console.Write(table);
                return 2;
            }

            table.AddRow("model", info.Name.Length > 0 ? $"{info.Name}: {info.ModelName}" : info.ModelName);
            table.AddRow("graph", info.Graph);
            table.AddRow("input", $"{info.InputWidth}×{info.InputHeight}");
            table.AddRow("preferred pixel format", info.PreferredPixelFormat.ToString());
            table.AddRow("default threshold", info.DefaultMatchThreshold.ToString(CultureInfo.InvariantCulture));
            table.AddRow("max matches per pair", info.MaxMatchesPerPair.ToString(CultureInfo.InvariantCulture));
            table.AddRow("max batch size", info.MaxBatchSize.ToString(CultureInfo.InvariantCulture));
            table.AddRow("execution provider", info.ExecutionProvider);
            table.AddRow("max image side", info.MaxImageDimension.ToString(CultureInfo.InvariantCulture));
            table.AddRow("max message bytes", info.MaxMessageBytes.ToString(CultureInfo.InvariantCulture));
            console.Write(table);
            return health == Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving ? 0 : 2;
        }));
        return command;
    }
}
