using System.CommandLine;
using Spectre.Console;
using VideoMatch.Engine.Inference;

namespace VideoMatch.Cli.Commands;

/// <summary>
/// <c>videomatch verify MODEL_DIR</c>: runs an export's self-check (inputs and PyTorch's outputs, written by
/// tools/export) through this machine's ONNX Runtime, for every graph of the folder, and prints the differences.
/// </summary>
internal static class VerifyCommand
{
    public static Command Create(CliContext context)
    {
        var folder = new Argument<DirectoryInfo>("MODEL_DIR") { Description = "A model folder written by tools/export/export.py." };
        var provider = new Option<string>("--provider") { Description = "Where to run: cpu (default) or cuda.", DefaultValueFactory = _ => "cpu" };
        provider.AcceptOnlyFromAmong("cpu", "cuda");
        var device = CliOptions.Count("--device", "GPU ordinal for --provider cuda. Default 0.", 0, 0, 64);
        var command = new Command("verify", "Check an exported model on this machine: its graphs against PyTorch's outputs on the export's self-check inputs.")
        {
            folder, provider, device,
        };
        command.SetAction(Cli.Guard(context, (parse, _) =>
        {
            var path = parse.GetValue(folder)!.FullName;
            var manifest = ModelLoader.Describe(path);
            if (manifest.Family == ModelFamily.XFeatLighterGlue)
            {
                throw new InvalidDataException($"'{path}' holds {NoSelfCheck(manifest)}");
            }

            var selfCheck = manifest.SelfCheckPath(manifest.SourceFile);
            var variants = new List<(string Name, InferenceOptions Options)> { ("fp32", Options(path, parse, provider, device, "fp32", useSplit: false)) };
            if (manifest.HasSplit("fp32"))
            {
                variants.Add(("fp32 split", Options(path, parse, provider, device, "fp32", useSplit: true)));
            }

            if (manifest.Graph(GraphRole.Pair, "fp16") is not null)
            {
                variants.Add(("fp16", Options(path, parse, provider, device, "fp16", useSplit: false)));
            }

            if (manifest.HasSplit("fp16"))
            {
                variants.Add(("fp16 split", Options(path, parse, provider, device, "fp16", useSplit: true)));
            }

            var table = new Table().AddColumn("graph").AddColumn("result").AddColumn("PyTorch matches").AddColumn("kept").AddColumn("added")
                .AddColumn("largest score diff").AddColumn("largest keypoint diff (px)");
            var passed = true;
            foreach (var (name, options) in variants)
            {
                using var matcher = ModelLoader.Open(options, 4, setting: null);
                var report = SelfCheck.Run(matcher, selfCheck, SelfCheckTolerances.For(options.Precision));
                passed &= report.Passed;
                table.AddRow(name, report.Passed ? "passed" : "[red]FAILED[/]", $"{report.Reference}", $"{report.Kept} ({report.KeptShare:P1})", $"{report.Added}",
                    $"{report.MaxScoreDifference:G3} (≤ {report.Tolerances.ScoreDifference:G3})",
                    $"{report.MaxKeypointDifferencePx:G3} ({report.KeypointOutliers} > {report.Tolerances.KeypointDifferencePx:G3})");
                // Each line names its graph: the fp32 and split reports are otherwise alike.
                context.Output.WriteLine($"{name}, {matcher.Graph}: {report}");
            }

            context.Console.Write(table);
            return Task.FromResult(passed ? 0 : 1);
        }));
        return command;
    }

    private static string NoSelfCheck(ModelManifest xfeat) =>
        $"XFeat + LighterGlue ({xfeat.Graph(GraphRole.Extractor)?.File} + {xfeat.Graph(GraphRole.Matcher)?.File}): published graphs that come without a self-check, so there is nothing to verify; serve the folder as it is.";

    private static InferenceOptions Options(string path, ParseResult parse, Option<string> provider, Option<int> device, string precision, bool useSplit) => new()
    {
        ModelPath = path,
        ExecutionProvider = parse.GetValue(provider)!,
        DeviceId = parse.GetValue(device),
        Precision = precision,
        UseSplit = useSplit,
        WarmUp = false,
    };
}
