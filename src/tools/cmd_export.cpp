// `modtrain export`: a trained model directory in the layout Hugging Face transformers and
// text-embeddings-inference load (modelio/hf_export.h), validated before and after it is written.
#include <cstdio>
#include <memory>
#include <string>
#include <utility>

#include "commands.h"
#include "modtrain/core/error.h"
#include "modtrain/modelio/hf_export.h"
#include "modtrain/modelio/model_dir.h"

namespace modtrain::tools {

void add_export_commands(CLI::App& app, Action& action) {
  auto export_flags = std::make_shared<std::pair<std::string, std::string>>();
  auto allow_skew = std::make_shared<bool>(false);
  CLI::App* e =
      app.add_subcommand("export", "Write a Hugging Face model directory (transformers / text-embeddings-inference)");
  e->add_option("--checkpoint", export_flags->first, "Model directory (RUN/model)")->required();
  e->add_option("--out", export_flags->second, "Output directory")->required();
  e->add_flag("--allow-skew", *allow_skew,
              "Export a model whose tweet normalisation tokenizer.json cannot express exactly (the model card says "
              "so in bold)");
  e->callback([&action, export_flags, allow_skew] {
    action = [export_flags, allow_skew] {
      return run_local([&] {
        // Read and validate what is exported (metadata, vocab, every weight finite), then the
        // written copy the same way: an export is never a byte copy of a corrupt model.
        load_model_dir(export_flags->first, torch::kCPU, /*allow_mlm=*/true);
        export_huggingface(export_flags->first, export_flags->second, *allow_skew);
        load_model_dir(export_flags->second, torch::kCPU, /*allow_mlm=*/true);
        std::printf("exported %s -> %s\n", export_flags->first.c_str(), export_flags->second.c_str());
        return kExitOk;
      });
    };
  });
}

}  // namespace modtrain::tools
