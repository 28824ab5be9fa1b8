using System.Diagnostics;
using System.Globalization;
using System.Numerics;
using System.Text;
using OpenCvSharp;
using VideoMatch.Client;
using VideoMatch.Engine.Geometry;
using VideoMatch.Eval;
using VideoMatch.Synthetic;

// videomatch eval: synthetic camera motion made from one real image, scored against exact truth.
//   dotnet run -c Release --project tools/VideoMatch.Eval -- [--image PHOTO] [--xfeat FOLDER] [--pairs N] [--out FILE]
var options = EvalOptions.Parse(args);
if (options is null)
{
    return 2;
}

using var photo = Cv2.ImRead(options.Image, ImreadModes.Color);
if (photo.Empty())
{
    Console.Error.WriteLine($"eval: cannot read image '{options.Image}'.");
    return 2;
}

Cv2.CvtColor(photo, photo, ColorConversionCodes.BGR2RGB);
var matchers = new List<IEvalMatcher> { new EngineMatcher("embedded (weight-free dense)", "") };
if (options.XFeat is not null)
{
    matchers.Add(new EngineMatcher("XFeat + LighterGlue", options.XFeat));
}

matchers.Add(new OrbMatcher());
var report = new StringBuilder();
report.AppendLine(CultureInfo.InvariantCulture, $"Image {Path.GetFileName(options.Image)} ({photo.Width}×{photo.Height}), frames {Frames.Width}×{Frames.Height}, {options.Pairs} pairs per motion, seed {options.Seed}; {DateTime.UtcNow:yyyy-MM-dd}, {Environment.ProcessorCount} cores, CPU.");
report.AppendLine();
report.AppendLine("| motion | model | median corner error (px) | precision (≤ 3 px) | matches / pair | ms / pair |");
report.AppendLine("|---|---|---|---|---|---|");
foreach (var motion in Motions.All)
{
    var pairs = Motions.Pairs(motion, options.Pairs, options.Seed);
    foreach (var matcher in matchers)
    {
        var score = Scoring.Run(matcher, photo, pairs, motion);
        report.AppendLine(CultureInfo.InvariantCulture, $"| {motion.Name} | {matcher.Name} | {score.MedianCornerError:F2} | {score.Precision:P1} | {score.MeanMatches:F0} | {score.MeanMs:F0} |");
        Console.Error.WriteLine($"{motion.Name,-22} {matcher.Name,-30} corner {score.MedianCornerError,7:F2} px  precision {score.Precision,6:P1}");
    }
}

report.AppendLine();
report.AppendLine(CultureInfo.InvariantCulture, $"Stabilization: {Motions.ShakyFrames} frames, pan (2, 0.5) px per frame with ±6 px and ±1.5° of shake per frame, camera path smoothed over ±15 frames; jitter = RMS change of the frame-to-frame shift measured by phase correlation on the central 60%.");
report.AppendLine();
report.AppendLine("| model | jitter of input (px) | jitter of stabilized output (px) | ratio |");
report.AppendLine("|---|---|---|---|");
var shaky = CameraMotion.Shaky(Motions.ShakyFrames, Frames.Width, Frames.Height, new Vector2(2f, 0.5f), 6f, 1.5f, options.Seed);
for (var i = 0; i < shaky.Length; i++)
{
    shaky[i] = shaky[i] * Matrix3x2.CreateTranslation(Motions.Origin - new Vector2(60, 15));
}

var input = shaky.Select(view => Frames.Render(photo, view)).ToArray();
var inputJitter = Scoring.Jitter(input);
foreach (var matcher in matchers)
{
    var stabilized = Scoring.Stabilize(matcher, input, radius: 15);
    var jitter = Scoring.Jitter(stabilized);
    report.AppendLine(CultureInfo.InvariantCulture, $"| {matcher.Name} | {inputJitter:F2} | {jitter:F2} | {jitter / inputJitter:F2} |");
    Console.Error.WriteLine($"stabilized with {matcher.Name}: jitter {inputJitter:F2} → {jitter:F2} px");
    foreach (var frame in stabilized)
    {
        frame.Dispose();
    }
}

foreach (var frame in input)
{
    frame.Dispose();
}

foreach (var matcher in matchers)
{
    matcher.Dispose();
}

Console.Write(report);
if (options.Out is not null)
{
    await File.WriteAllTextAsync(options.Out, report.ToString());
}

return 0;

namespace VideoMatch.Eval
{
    internal sealed record EvalOptions(string Image, string? XFeat, int Pairs, int Seed, string? Out)
    {
        public static EvalOptions? Parse(string[] args)
        {
            string? image = Shared("images/DSC_0410.jpg");
            var xfeat = Shared("models/xfeat-lighterglue/lighterglue_L3.onnx") is { } glue ? Path.GetDirectoryName(glue) : null;
            int pairs = 10, seed = 7;
            string? output = null;
            for (var i = 0; i < args.Length; i++)
            {
                var value = i + 1 < args.Length ? args[i + 1] : null;
                switch (args[i])
                {
                    case "--image" when value is not null: image = value; i++; break;
                    case "--xfeat" when value is not null: xfeat = value.Length == 0 ? null : value; i++; break;
                    case "--pairs" when int.TryParse(value, CultureInfo.InvariantCulture, out pairs) && pairs > 0: i++; break;
                    case "--seed" when int.TryParse(value, CultureInfo.InvariantCulture, out seed): i++; break;
                    case "--out" when value is not null: output = value; i++; break;
                    default:
                        Console.Error.WriteLine($"eval: unknown or incomplete option '{args[i]}'. Options: --image PHOTO, --xfeat FOLDER ('' for none), --pairs N, --seed N, --out FILE.");
                        return null;
                }
            }

            if (image is null || !File.Exists(image))
            {
                Console.Error.WriteLine("eval: no image; pass --image PHOTO (../shared/images/DSC_0410.jpg is the default where ../shared exists).");
                return null;
            }

            return new EvalOptions(image, xfeat, pairs, seed, output);
        }

        private static string? Shared(string relative)
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "VideoMatch.sln")))
                {
                    var path = Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared", relative));
                    return File.Exists(path) ? path : null;
                }
            }

            return null;
        }
    }

    /// <summary>A kind of camera motion between the two frames of a pair.</summary>
    internal sealed record Motion(string Name, float MaxShiftPx, float MaxDegrees, float MaxZoom, float NoiseSigma, bool Brightness);

    internal static class Motions
    {
        public const int ShakyFrames = 60;

        /// <summary>Where the crop window sits on the photo (its top-left, before motion).</summary>
        public static Vector2 Origin { get; set; } = new(192, 101);

        public static Motion[] All { get; } =
        [
            new("translation ±20 px", 20, 0, 0, 0, false),
            new("rotation ±5°", 3, 5, 0, 0, false),
            new("zoom ±5%", 3, 0, 0.05f, 0, false),
            new("noise σ 8", 5, 0, 0, 8, false),
            new("brightness ×1.3 + 20", 5, 0, 0, 0, true),
            new("all combined", 10, 5, 0.05f, 8, true),
        ];

        /// <summary>Seeded (view0, view1) frame-to-photo maps: view0 a small random offset, view1 the motion on top.</summary>
        public static (Matrix3x2 View0, Matrix3x2 View1)[] Pairs(Motion motion, int count, int seed)
        {
            var random = new Random(seed + motion.Name.Length);
            float Uniform(float max) => (float)((random.NextDouble() * 2) - 1) * max;
            var pairs = new (Matrix3x2, Matrix3x2)[count];
            for (var i = 0; i < count; i++)
            {
                var at = Matrix3x2.CreateTranslation(Origin + new Vector2(Uniform(10), Uniform(10)));
                var view0 = CameraMotion.View(Frames.Width, Frames.Height, 0, 1, Vector2.Zero) * at;
                var view1 = CameraMotion.View(Frames.Width, Frames.Height, Uniform(motion.MaxDegrees), 1 + Uniform(motion.MaxZoom),
                    new Vector2(Uniform(motion.MaxShiftPx), Uniform(motion.MaxShiftPx))) * at;
                pairs[i] = (view0, view1);
            }

            return pairs;
        }
    }

    internal static class Frames
    {
        public const int Width = 640;
        public const int Height = 480;

        /// <summary>RGB24 frame whose pixel (x, y) shows the photo at view(x, y), bilinear.</summary>
        public static Mat Render(Mat photo, Matrix3x2 view, float noiseSigma = 0, bool brightness = false, int seed = 0)
        {
            using var map = new Mat(2, 3, MatType.CV_64FC1);
            map.SetArray(new double[] { view.M11, view.M21, view.M31, view.M12, view.M22, view.M32 });
            var frame = new Mat();
            Cv2.WarpAffine(photo, frame, map, new Size(Width, Height), InterpolationFlags.Linear | InterpolationFlags.WarpInverseMap, BorderTypes.Reflect101);
            if (brightness)
            {
                frame.ConvertTo(frame, MatType.CV_8UC3, 1.3, 20);
            }

            if (noiseSigma > 0)
            {
                using var noise = new Mat(frame.Size(), MatType.CV_16SC3);
                var rng = new RNG((ulong)seed);
                rng.Fill(noise, DistributionType.Normal, Scalar.All(0), Scalar.All(noiseSigma));
                using var wide = new Mat();
                frame.ConvertTo(wide, MatType.CV_16SC3);
                Cv2.Add(wide, noise, wide);
                wide.ConvertTo(frame, MatType.CV_8UC3);
            }

            return frame;
        }

        public static byte[] Bytes(Mat frame)
        {
            frame.GetArray(out Vec3b[] pixels);
            var bytes = new byte[pixels.Length * 3];
            for (var i = 0; i < pixels.Length; i++)
            {
                (bytes[3 * i], bytes[(3 * i) + 1], bytes[(3 * i) + 2]) = (pixels[i].Item0, pixels[i].Item1, pixels[i].Item2);
            }

            return bytes;
        }

        public static byte[] Gray(Mat frame)
        {
            using var gray = new Mat();
            Cv2.CvtColor(frame, gray, ColorConversionCodes.RGB2GRAY);
            gray.GetArray(out byte[] pixels);
            return pixels;
        }
    }

    internal sealed record Score(double MedianCornerError, double Precision, double MeanMatches, double MeanMs);

    internal static class Scoring
    {
        public static Score Run(IEvalMatcher matcher, Mat photo, (Matrix3x2 View0, Matrix3x2 View1)[] pairs, Motion motion)
        {
            var cornerErrors = new List<double>();
            long matches = 0, correct = 0;
            var milliseconds = 0.0;
            for (var i = 0; i < pairs.Length; i++)
            {
                var (view0, view1) = pairs[i];
                using var frame0 = Frames.Render(photo, view0);
                using var frame1 = Frames.Render(photo, view1, motion.NoiseSigma, motion.Brightness, seed: i + 1);
                var started = Stopwatch.GetTimestamp();
                var (points0, points1) = matcher.Match(frame0, frame1);
                milliseconds += Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                matches += points0.Length / 2;
                for (var m = 0; m < points0.Length / 2; m++)
                {
                    var truth = TexturedScene.Map(new Vector2(points0[2 * m], points0[(2 * m) + 1]), view0, view1);
                    correct += Vector2.Distance(truth, new Vector2(points1[2 * m], points1[(2 * m) + 1])) <= 3f ? 1 : 0;
                }

                var fit = TransformEstimator.Estimate(TransformKind.Homography, points0, points1, 3);
                cornerErrors.Add(fit.Matrix.Length == 9 ? CornerError(fit.Matrix, view0, view1) : double.PositiveInfinity);
            }

            cornerErrors.Sort();
            return new Score(cornerErrors[cornerErrors.Count / 2], matches > 0 ? (double)correct / matches : 0, (double)matches / pairs.Length, milliseconds / pairs.Length);
        }

        /// <summary>Per-pair similarities from the matcher, the camera path smoothed as <c>videomatch stabilize</c> does, frames warped.</summary>
        public static Mat[] Stabilize(IEvalMatcher matcher, Mat[] frames, int radius)
        {
            var transforms = new List<double[]?> { null };
            for (var t = 1; t < frames.Length; t++)
            {
                var (points0, points1) = matcher.Match(frames[t - 1], frames[t]);
                var fit = TransformEstimator.Estimate(TransformKind.Similarity, points0, points1, 3);
                transforms.Add(fit.Matrix.Length == 9 ? fit.Matrix : null);
            }

            var path = CameraPath.Smooth(transforms, radius);
            var output = new Mat[frames.Length];
            for (var t = 0; t < frames.Length; t++)
            {
                var c = path.Correction(t);
                using var map = new Mat(2, 3, MatType.CV_64FC1);
                map.SetArray(new[] { c[0], c[1], c[2], c[3], c[4], c[5] });
                output[t] = new Mat();
                Cv2.WarpAffine(frames[t], output[t], map, frames[t].Size(), InterpolationFlags.Linear, BorderTypes.Constant, Scalar.Black);
            }

            return output;
        }

        public static double Jitter(Mat[] frames)
        {
            var steps = new List<(double X, double Y)>();
            for (var t = 1; t < frames.Length; t++)
            {
                steps.Add(MotionJitter.Shift(Frames.Gray(frames[t - 1]), Frames.Gray(frames[t]), Frames.Width, Frames.Height));
            }

            return MotionJitter.Jitter(steps);
        }

        /// <summary>Largest distance, over the frame's corners inset 10%, between the fitted and the true image of the corner.</summary>
        private static double CornerError(double[] matrix, Matrix3x2 view0, Matrix3x2 view1)
        {
            var errors = new List<double>();
            foreach (var corner in new[] { new Vector2(64, 48), new Vector2(Frames.Width - 64, 48), new Vector2(64, Frames.Height - 48), new Vector2(Frames.Width - 64, Frames.Height - 48) })
            {
                var truth = TexturedScene.Map(corner, view0, view1);
                var (x, y) = TransformEstimator.Apply(matrix, corner.X, corner.Y);
                errors.Add(Math.Sqrt(((x - truth.X) * (x - truth.X)) + ((y - truth.Y) * (y - truth.Y))));
            }

            return errors.Max();
        }
    }
}
